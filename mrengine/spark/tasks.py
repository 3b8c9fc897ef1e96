"""What runs in Spark's executors: one map task per split, one reduce task per partition; a map-only
step's map tasks write their part files themselves (`executor.map_to_part`), and there is no shuffle.

Both call the native engine's functions — `executor.map_to_file` reads, maps, combines, partitions
and sorts a split exactly as a native map attempt does; `executor.reduce_to_file` merges, groups,
reduces and writes exactly as a native reduce attempt does — so the bytes out are the same. Spark
only moves each map's sorted segments to their reducer, as opaque chunks of the native run format.

Shuffle records are `(partition, value)`, the value a `RunChunk` (a chunk of one map task's segment)
or, sent to partition 0, a `MapCounters` (a map task's counters) or a `MapError` (its record error).
Spark serves a reducer one output of each map task, so partition 0 sees the counters of exactly one
successful attempt of every map, however often a map was re-run.

A record error (`RecordError`: bad input bytes, a value that cannot be encoded) would fail every
attempt alike, and Spark cannot be told not to retry an exception, so such a task does not fail: it
returns its error as its result (a map through partition 0's reducer), and the driver fails the job.

A reducer spools each map's chunks to a local file at their offsets, then merges the files in map
order, as the native reducer merges fetched runs: values of one key arrive in map-index order, and
in the order the map (or its combiner) emitted them within one map.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterator

import cloudpickle

from .. import outputs
from ..cache import SlotCache
from ..errors import RecordError
from ..executor import error_report, map_to_file, map_to_part, reduce_to_file
from ..inputs import InputFormat, Split
from ..job import prime_linecache
from ..messages import PartOutput, StepSpec
from ..shuffle.runs import Run
from ..steps import resolve_input_format

CHUNK_BYTES = 1 << 20  # a shuffle record's share of a segment: Spark batches a few dozen records at once


@dataclass
class RunChunk:
    """`data` is bytes [offset, offset + len(data)) of map task `map_index`'s segment for one reducer."""

    map_index: int
    offset: int
    length: int  # the whole segment's
    records: int
    data: bytes


@dataclass
class MapCounters:
    map_index: int
    counters: list
    record: dict = field(default_factory=dict)  # the task's row of the job report (`task_record`)


@dataclass
class MapError:
    map_index: int
    report: dict  # error_report's fields, and the task's name


@dataclass
class ParsedSplit:
    split: dict  # the Split's fields
    reader: str  # the task attempt that parsed it
    blocks: bytes  # its blocks, pickled


@dataclass
class ReducedPartition:
    """What a reduce task hands back to the driver: its attempt, its output, the maps' counters it read.
    A map-only step's map task hands back one too, for the part it wrote (`partition`: its index)."""

    partition: int
    attempt_id: str
    part: PartOutput | None
    map_counters: dict  # map index -> counters
    error: dict | None = None  # a record error met by this task, or by a map it read (then `part` is None)
    record: dict = field(default_factory=dict)  # this task's row of the job report (`task_record`)
    map_records: dict = field(default_factory=dict)  # map index -> the row of the map attempt whose output it read

# Spark reuses its Python workers across tasks, as the native worker reuses its slot processes: the
# same cache keeps unpickled jobs and their broadcast values. Not splits: a main(ctx) session's parsed
# splits live in a persisted RDD (see `read_split`), which Spark keeps where its executors can use it.
_cache = SlotCache(max_bytes=0, on_load=prime_linecache)


def _local_dir() -> str:
    # Executors point Python workers at Spark's own scratch space.
    dirs = os.environ.get("SPARK_LOCAL_DIRS")
    return dirs.split(",")[0] if dirs else tempfile.gettempdir()


def task_record(attempt_id: str, started: float, **io) -> dict:
    """What a Spark task tells the driver of itself for the job report: its attempt, executor host, wall
    clock start, seconds, and records and bytes in and out (Spark's own task metrics are on its JVM side)."""
    return {"attempt": attempt_id, "host": socket.gethostname(), "started": round(started, 3),
            "seconds": round(time.time() - started, 3), **io}


def _attempt() -> tuple[int, str]:
    from pyspark import TaskContext

    tc = TaskContext.get()
    return tc.attemptNumber(), f"t{tc.taskAttemptId()}-a{tc.attemptNumber()}"


# ---------------------------------------------------------------- errors


class TaskError(Exception):
    """Carries a failed attempt's report to the driver inside the exception text Spark passes on."""

    mark = "mrengine-task-error:"

    def __init__(self, task: str, exc: BaseException):
        report = {**asdict(error_report(exc)), "task": task, "attempt": _attempt()[0]}
        encoded = base64.b64encode(json.dumps(report).encode()).decode()
        super().__init__(f"{task} failed: {report['message'].splitlines()[0]} {self.mark}{encoded};")


def find_report(text: str) -> dict | None:
    """The report a TaskError put in `text` (Spark's message for a failed job), if there is one."""
    m = re.search(re.escape(TaskError.mark) + r"([A-Za-z0-9+/=]+);", text)
    return json.loads(base64.b64decode(m.group(1))) if m else None


# ---------------------------------------------------------------- map


def partition_of(partition: int) -> int:
    """Spark's partitionFunc: the map task already chose the partition with the job's partitioner."""
    return partition


# The functions Spark pickles (the nested `run`s) call module-level functions only: cloudpickle sends a
# nested function's globals by value, so one touching `_cache` would get a fresh copy with every task.


def map_task(spec: StepSpec, job_id: str, job_bytes, num_partitions: int):
    """The function Spark runs over a partition of split descriptors (one split each).

    `job_bytes`: a Spark broadcast of the pickled job (its `ctx.broadcast` value inside), which each
    executor fetches once, rather than a copy in every task.
    """

    def run(_: int, rows: Iterator[dict]) -> Iterator[tuple]:
        for row in rows:
            yield from _map_one(spec, job_id, job_bytes, Split(**row), None, num_partitions)

    return run


def read_split(fmt: InputFormat, storage_options: dict):
    """What a main(ctx) session's persisted RDD holds per split: a `ParsedSplit`.

    Its `reader` is the task attempt that parsed the split; a map task that finds its own id there read
    the split itself (`split_reads`), any other found it in Spark's cache (`split_cache_hits`), so the
    counts come from the attempt whose output was used, however often Spark re-ran either.
    """

    def read(row: dict) -> ParsedSplit:
        split = Split(**row)
        try:
            blocks = list(fmt.read(split, storage_options))
        except Exception as exc:
            raise _map_error(split, exc) from None
        # cloudpickle: blocks carry a locator function for error messages, which plain pickle refuses.
        return ParsedSplit(row, _attempt()[1], cloudpickle.dumps(blocks, protocol=5))

    return read


def map_cached_task(spec: StepSpec, job_id: str, job_bytes, num_partitions: int):
    """As `map_task`, over a partition of `read_split` results."""

    def run(_: int, items: Iterator[ParsedSplit]) -> Iterator[tuple]:
        for item in items:
            yield from _map_one(spec, job_id, job_bytes, Split(**item.split), item, num_partitions)

    return run


def _map_name(split: Split) -> str:
    return f"map task {split.index} (split {split.describe()})"


def _map_error(split: Split, exc: BaseException) -> TaskError:
    return TaskError(_map_name(split), exc)


def _report(task: str, exc: BaseException) -> dict:
    return {**asdict(error_report(exc)), "task": task}


def map_to_part_task(spec: StepSpec, job_id: str, job_bytes):
    """The function Spark runs over a partition of a map-only step's split descriptors (or `read_split`
    results): each map writes its attempt's part file and yields its `ReducedPartition`."""

    def run(_: int, items: Iterator) -> Iterator[ReducedPartition]:
        for item in items:
            parsed = item if isinstance(item, ParsedSplit) else None
            yield _map_to_part_one(spec, job_id, job_bytes, Split(**(item.split if parsed else item)), parsed)

    return run


def _map_to_part_one(spec: StepSpec, job_id: str, job_bytes, split: Split,
                     parsed: ParsedSplit | None) -> ReducedPartition:
    _, attempt_id = _attempt()
    try:
        job, fmt, blocks, broadcast, engine = _map_input(spec, job_id, job_bytes, split, parsed)
        out_path = outputs.attempt_path(spec.output, job_id, attempt_id, split.index)
        part = map_to_part(job.steps[spec.step], split, fmt, iter(blocks), spec.params, broadcast, out_path,
                           spec.output_format, spec.storage_options, engine)
        return ReducedPartition(split.index, attempt_id, part, {})
    except RecordError as exc:
        return ReducedPartition(split.index, attempt_id, None, {}, _report(_map_name(split), exc))
    except Exception as exc:
        raise _map_error(split, exc) from None


def _map_input(spec: StepSpec, job_id: str, job_bytes, split: Split, parsed: ParsedSplit | None) -> tuple:
    """(job, input format, blocks, broadcast value, engine counters) of one map task."""
    job = _cache.job(job_id, job_bytes.value)
    fmt = resolve_input_format(spec.input_format, job)
    engine: Counter = Counter()
    if parsed is None:
        blocks = fmt.read(split, spec.storage_options)
    else:
        engine["split_reads" if parsed.reader == _attempt()[1] else "split_cache_hits"] += 1
        blocks = cloudpickle.loads(parsed.blocks)
        for block in blocks:  # as the native cache hands them out: shared between rounds, so read-only
            block.values.flags.writeable = False
    return job, fmt, blocks, _cache.broadcast(job_id, job, engine), engine


def _map_one(spec: StepSpec, job_id: str, job_bytes, split: Split, parsed: ParsedSplit | None,
             num_partitions: int) -> Iterator[tuple]:
    started = time.time()
    try:
        job, fmt, blocks, broadcast, engine = _map_input(spec, job_id, job_bytes, split, parsed)
        with tempfile.TemporaryDirectory(prefix="mrengine-map-", dir=_local_dir()) as tmp:
            path, segments, counters, heavy_keys = map_to_file(job.steps[spec.step], split, fmt, iter(blocks),
                                                               spec.params, broadcast, num_partitions,
                                                               spec.sort_buffer_bytes, tmp, engine)
            record = task_record(_attempt()[1], started, records_in=engine["map_input_records"],
                                 bytes_in=engine["map_input_bytes"], records_out=sum(s.records for s in segments),
                                 bytes_out=sum(s.length for s in segments), heavy_keys=heavy_keys)
            with open(path, "rb") as f:
                for partition, seg in enumerate(segments):
                    f.seek(seg.offset)
                    for offset in range(0, seg.length, CHUNK_BYTES):
                        data = f.read(min(CHUNK_BYTES, seg.length - offset))
                        yield partition, RunChunk(split.index, offset, seg.length, seg.records, data)
        yield 0, MapCounters(split.index, counters, record)
    except RecordError as exc:
        yield 0, MapError(split.index, _report(_map_name(split), exc))
    except Exception as exc:
        raise _map_error(split, exc) from None


# ---------------------------------------------------------------- reduce


def reduce_task(spec: StepSpec, job_id: str, job_bytes):
    """The function Spark runs over one shuffled partition; yields its one `ReducedPartition`."""

    def run(partition: int, records: Iterator[tuple]) -> Iterator[ReducedPartition]:
        _, attempt_id = _attempt()
        started = time.time()
        try:
            reduced = _reduce_one(spec, job_id, job_bytes.value, attempt_id, partition, records)
        except RecordError as exc:
            reduced = ReducedPartition(partition, attempt_id, None, {}, _report(f"reduce task {partition}", exc))
        except Exception as exc:
            raise TaskError(f"reduce task {partition}", exc) from None
        reduced.record = task_record(attempt_id, started, **reduced.record)
        yield reduced

    return run


class _Spool:
    """One map task's segment for this reducer, written chunk by chunk (at their offsets) to a local file."""

    def __init__(self, path: str, length: int, records: int):
        self.path, self.length, self.records = path, length, records
        self.received = 0
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT)

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)
        self.received += len(data)


def _reduce_one(spec: StepSpec, job_id: str, job_bytes: bytes, attempt_id: str, partition: int,
                records: Iterator[tuple]) -> ReducedPartition:
    job = _cache.job(job_id, job_bytes)
    engine: Counter = Counter()
    broadcast = _cache.broadcast(job_id, job, engine)
    map_counters: dict = {}
    map_records: dict = {}
    map_errors: dict = {}
    spools: dict[int, _Spool] = {}
    with tempfile.TemporaryDirectory(prefix="mrengine-reduce-", dir=_local_dir()) as tmp:
        try:
            for _, value in records:
                if isinstance(value, MapCounters):
                    map_counters[value.map_index] = value.counters
                    map_records[value.map_index] = value.record
                    continue
                if isinstance(value, MapError):
                    map_errors[value.map_index] = value.report
                    continue
                spool = spools.get(value.map_index)
                if spool is None:
                    path = os.path.join(tmp, f"m{value.map_index:05d}.run")
                    spool = spools[value.map_index] = _Spool(path, value.length, value.records)
                spool.write(value.offset, value.data)
        finally:
            for spool in spools.values():
                os.close(spool.fd)
        if map_errors:
            return ReducedPartition(partition, attempt_id, None, {}, map_errors[min(map_errors)])
        runs = []
        for map_index, spool in sorted(spools.items()):  # map order, as the native reducer merges
            if spool.received != spool.length:
                raise RuntimeError(f"map output {map_index} arrived with {spool.received} of its {spool.length} bytes")
            runs.append(Run(spool.path, 0, spool.length, spool.records, map_index))
        out_path = outputs.attempt_path(spec.output, job_id, attempt_id, partition)
        result = reduce_to_file(job.steps[spec.step], runs, partition, out_path, spec.output_format, spec.params,
                                broadcast, spec.storage_options, engine, tmp)
    io = {"records_in": sum(r.records for r in runs), "bytes_in": sum(r.length for r in runs),
          "records_out": result.records, "bytes_out": result.bytes}
    return ReducedPartition(partition, attempt_id, result, map_counters, None, io, map_records)
