"""Running one task attempt: a map (records → mapper → buffer → sorted partition file) or a reduce
(fetch → merge → group → reducer → attempt output file).

Exceptions raised by a job's own code become `UserCodeError`, carrying the user's traceback (their
file and line, without mrengine's frames) and where it happened: the split and the record's offset,
or the reduce key. A mapper's or reducer's error also names the record (`BadRecord`), which later
attempts pass over when the attempt's spec lists it in `skip` (`--skip-bad-records`).
"""

from __future__ import annotations

import gc
import operator
import os
import shutil
import traceback
from collections import Counter
from contextlib import contextmanager
from itertools import chain
from typing import Any, Iterable, Iterator

from . import context, outputs, sorting
from .sorting import pairs_of as _pairs
from .cache import SlotCache
from .combiners import Fold
from .errors import MrEngineError, RecordError, UserCodeError
from .inputs import Split
from .job import JobSpec, Step, user_traceback
from .messages import BadRecord, ErrorInfo, MapOutput, PartOutput, TaskSpec
from .shuffle.buffer import MapOutputBuffer
from .shuffle.fetch import fetch_segment
from .shuffle.merge import group_by_key, merge_runs
from .shuffle.partition import checked_partitioner
from .shuffle.runs import Run
from .steps import resolve_input_format

ENGINE = "mrengine"
RECORD_TEXT_LIMIT = 1000  # characters of a bad record kept for its quarantine entry


def _user_error(exc: BaseException, function: str, where: str, record: BadRecord | None = None) -> UserCodeError:
    hint = ""
    if isinstance(exc, (TypeError, ValueError)) and "unpack" in str(exc) or "not iterable" in str(exc):
        hint = f" ({function} must yield or return (key, value) pairs)"
    return UserCodeError(f"{function} raised {type(exc).__name__}: {exc}{hint}, {where}", user_traceback(exc), record)


def _record_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= RECORD_TEXT_LIMIT else f"{text[:RECORD_TEXT_LIMIT]}... ({len(text)} characters)"


def error_report(exc: BaseException) -> ErrorInfo:
    """A failed attempt's error as it travels to whoever decides on retries; final when another
    attempt would fail the same way (a RecordError)."""
    if isinstance(exc, UserCodeError):
        return ErrorInfo(exc.args[0], exc.args[1], record=exc.record)
    if isinstance(exc, MrEngineError):
        return ErrorInfo(str(exc), final=isinstance(exc, RecordError))
    return ErrorInfo(f"internal error: {type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))


def _counter_list(ctx: context.TaskContext, engine: Counter) -> list:
    merged = [[ENGINE, name, n] for name, n in sorted(engine.items()) if n]
    merged += [[g, n, v] for (g, n), v in sorted(ctx.counters.items())]
    return merged


@contextmanager
def _rare_collections(threshold: int = 100_000):
    """Run the cyclic garbage collector every `threshold` new containers instead of every 700.

    Buffers and merges build tuples and lists by the hundred thousand, and every collection walks
    what is alive: 4-7 % of a map task's instructions. Cycles a job makes are still collected.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


# ---------------------------------------------------------------- map


def run_map(job: JobSpec, step: Step, task: TaskSpec, work_dir: str,
            cache: SlotCache | None = None) -> tuple[str, MapOutput]:
    """Run one map attempt; returns its output file's path (the file stays in work_dir) and its result.

    `cache`: what the slot process keeps between attempts (broadcast values, parsed splits).
    """
    engine: Counter = Counter()
    fmt, broadcast, blocks = _map_input(job, task, cache, engine)
    attempt_dir = os.path.join(work_dir, task.job_id, task.attempt_id)
    os.makedirs(attempt_dir, exist_ok=True)
    path, segments, counters, heavy_keys = map_to_file(step, task.split, fmt, blocks, task.params, broadcast,
                                                       task.num_partitions, task.sort_buffer_bytes, attempt_dir, engine,
                                                       frozenset(task.skip))
    return path, MapOutput.of(segments, counters, heavy_keys)


def run_map_to_part(job: JobSpec, step: Step, task: TaskSpec, cache: SlotCache | None = None,
                    output_format: outputs.OutputFormat | None = None) -> PartOutput:
    """Run one map attempt of a map-only step: it writes its attempt's part file (`map_to_part`), in
    the task's output format or `output_format`."""
    engine: Counter = Counter()
    fmt, broadcast, blocks = _map_input(job, task, cache, engine)
    out_path = outputs.attempt_path(task.output, task.job_id, task.attempt_id, task.index)
    return map_to_part(step, task.split, fmt, blocks, task.params, broadcast, out_path,
                       output_format or task.output_format, task.storage_options, engine, frozenset(task.skip))


def _map_input(job: JobSpec, task: TaskSpec, cache: SlotCache | None, engine: Counter) -> tuple:
    """A map attempt's input format, broadcast value and blocks of its split (from the cache if it holds them)."""
    cache = cache if cache is not None else SlotCache(max_bytes=0)
    fmt = resolve_input_format(task.input_format, job)
    broadcast = cache.broadcast(task.job_id, job, engine)
    return fmt, broadcast, cache.blocks(job, fmt, task.split, task.storage_options, engine)


@_rare_collections()
def map_to_file(step: Step, split: Split, fmt, blocks: Iterator, params: dict, broadcast: Any, num_partitions: int,
                sort_buffer_bytes: int, attempt_dir: str, engine: Counter,
                skip: frozenset = frozenset()) -> tuple[str, list, list, list]:
    """Map the `blocks` of one split (read with `fmt`) into `attempt_dir/map.out`, one sorted segment
    per partition, passing over the records numbered in `skip`; every runner calls this. Returns
    (path, segments, counters, heavy keys per partition).
    """
    step = sorting.map_side(step)
    ctx = context.TaskContext(params, split=split, broadcast=broadcast)
    buffer = MapOutputBuffer(
        num_partitions,
        checked_partitioner(_guarded_partitioner(step.partitioner), num_partitions),
        _guarded_combiner(step.combiner),
        sort_buffer_bytes,
        attempt_dir,
        engine,
        fold=step.combiner.op if isinstance(step.combiner, Fold) else None,
        fold_error=_combiner_error,
    )
    context.activate(ctx)
    try:
        _run_mapper(step, blocks, buffer, engine, split, fmt, skip)
        path = os.path.join(attempt_dir, "map.out")
        segments = buffer.close(path)
    finally:
        context.activate(None)
    return path, segments, _counter_list(ctx, engine), buffer.heavy_keys


@_rare_collections()
def map_to_part(step: Step, split: Split, fmt, blocks: Iterator, params: dict, broadcast: Any, out_path: str,
                output_format: str | outputs.OutputFormat, storage_options: dict | None, engine: Counter,
                skip: frozenset = frozenset()) -> PartOutput:
    """Map the `blocks` of one split of a map-only step straight into the part file `out_path`, in the
    order the mapper yielded its pairs: no sort, no shuffle, no reduce. Every runner calls this."""
    ctx = context.TaskContext(params, split=split, broadcast=broadcast)
    writer = outputs.PartWriter(out_path, output_format, storage_options)
    context.activate(ctx)
    try:
        _run_mapper(step, blocks, _PartSink(writer), engine, split, fmt, skip)
        stats = writer.close()
    except BaseException:
        writer.abandon()
        raise
    finally:
        context.activate(None)
    engine["map_output_records"] += stats["records"]
    engine["output_bytes"] += stats["bytes"]
    return PartOutput(stats["bytes"], stats["records"], stats["crc32"], _counter_list(ctx, engine))


class _PartSink:
    """Takes a map-only map's pairs where a `MapOutputBuffer` would, passing them on to its part file."""

    def __init__(self, writer: outputs.PartWriter):
        self.writer = writer

    def collect(self, results: Iterable) -> None:
        self.writer.write((key, value) for result in results for key, value in _pairs(result))

    def add_all(self, pairs: Iterable[tuple]) -> None:
        self.collect((pairs,))


def _run_mapper(step: Step, blocks: Iterator, sink: MapOutputBuffer | _PartSink, engine: Counter, split: Split,
                fmt, skip: frozenset) -> None:
    """Call the step's map functions over the split's blocks, passing over the records numbered in
    `skip`, their pairs going into `sink`."""
    if step.map_split is not None:
        _map_split(step, blocks, sink, engine, split, fmt.whole_blocks)
    else:
        _map_records(step, blocks, sink, engine, split, skip)
    engine["map_input_bytes"] += max(split.end - split.start, 0) if split.end >= 0 else 0


# The partitioner and the combiner run inside the buffer's loop over the mapper's output; these
# wrappers report their exceptions as theirs, naming the key, rather than as the mapper's.


def _guarded_partitioner(partitioner):
    if partitioner is None:
        return None

    def partition(key, num_partitions):
        try:
            return partitioner(key, num_partitions)
        except Exception as exc:
            raise _user_error(exc, "partitioner", f"key {key!r}") from None

    return partition


def _combiner_error(exc: Exception, key: Any) -> UserCodeError:
    return _user_error(exc, "combiner", f"key {key!r}")


def _guarded_combiner(combiner):
    if combiner is None:
        return None

    def combine(key, values):
        try:
            yield from combiner(key, values)
        except MrEngineError:
            raise
        except Exception as exc:
            raise _combiner_error(exc, key) from None

    return combine


class _Position:
    """Where the mapper is, for error messages: the block, and the iterator its mapper calls draw
    the block's values from. That iterator's remaining length says which record is being mapped, so
    the per-record loop runs in C (`map`) and keeps no index of its own."""

    block: Any = None
    values: Iterator = iter(())
    records = 0  # in the blocks before this one

    @property
    def index(self) -> int:
        """The index in `block` of the record last handed to the mapper (-1: none yet)."""
        block, values = self.block, self.values  # read once: progress() reads from another thread
        if block is None:
            return -1
        return len(block.values) - operator.length_hint(values) - 1


# The running attempt's mapper position and engine counters, which `progress` reads from another thread.
_watched: list = [_Position(), Counter()]


def progress() -> int:
    """A number that grows while this process's attempt reaches new records, blocks or key groups: a
    slot process samples it to tell a slow attempt from a stuck one (limits.py)."""
    pos, engine = _watched
    return pos.records + pos.index + engine.get("reduce_input_groups", 0) + engine.get("map_input_records", 0)


def _mapper_calls(mapper, blocks: Iterator, pos: _Position, skip: frozenset, engine: Counter) -> Iterator:
    """mapper(key, value) for every record but those numbered in `skip`, a block's calls at a time;
    the buffer iterates the results."""
    blocks = iter(blocks)
    while True:
        pos.block = None  # an error while reading the next block is not the mapper's
        block = next(blocks, None)
        if block is None:
            return
        values = iter(block.values)
        pos.values, pos.block = values, block
        if skip:
            yield _calls_skipping(mapper, block.keys, values, pos.records, skip, engine)
        else:
            yield map(mapper, block.keys, values)
        pos.records += len(block.values)


def _calls_skipping(mapper, keys: Iterable, values: Iterator, first: int, skip: frozenset,
                    engine: Counter) -> Iterator:
    """One block's mapper calls, passing over the records numbered in `skip` (this block's first is
    numbered `first`)."""
    for i, (key, value) in enumerate(zip(keys, values)):
        if first + i in skip:
            engine["map_skipped_records"] += 1
            continue
        yield mapper(key, value)


def _map_records(step: Step, blocks: Iterator, buffer: MapOutputBuffer, engine: Counter, split: Split,
                 skip: frozenset) -> None:
    if step.mapper_init is not None:
        _call_hook(step.mapper_init, "mapper_init", "before the first record", buffer)
    pos = _watched[0] = _Position()
    _watched[1] = engine
    try:
        buffer.collect(chain.from_iterable(_mapper_calls(step.mapper, blocks, pos, skip, engine)))
    except MrEngineError:
        raise
    except Exception as exc:
        if pos.block is None:
            raise
        where = pos.block.locate(pos.index)
        raise _user_error(exc, "mapper", f"at {where}", _bad_record(pos, where)) from None
    engine["map_input_records"] += pos.records
    if step.mapper_final is not None:
        _call_hook(step.mapper_final, "mapper_final", "after the last record", buffer)


def _bad_record(pos: _Position, where: str) -> BadRecord:
    """The record the mapper raised on, numbered as every attempt of its split reads it."""
    block, i = pos.block, pos.index
    offset = block.offset(i) if block.offset is not None else -1
    return BadRecord(pos.records + i, where, _record_text(block.values[i]), offset)


def _call_hook(hook, name: str, where: str, buffer: MapOutputBuffer) -> None:
    try:
        buffer.add_all(_pairs(hook()))
    except MrEngineError:
        raise
    except Exception as exc:
        raise _user_error(exc, name, where) from None


def _map_split(step: Step, blocks: Iterator, buffer: MapOutputBuffer, engine: Counter, split: Split,
               whole_blocks: bool) -> None:
    seen = [0]
    _watched[1] = engine

    def block_values():
        for block in blocks:
            records = block.record_count()
            seen[0] += records
            engine["map_input_records"] += records
            yield block.values

    # Numeric formats hand map_split whole arrays, text_blocks whole str blocks; other records reach it
    # through chain at C speed, not through a generator per record.
    records = block_values() if whole_blocks else chain.from_iterable(block_values())
    try:
        buffer.add_all(_pairs(step.map_split(records)))
    except MrEngineError:
        raise
    except Exception as exc:
        raise _user_error(exc, "map_split", f"within the split's first {seen[0]} records") from None


# ---------------------------------------------------------------- reduce


def run_reduce(job: JobSpec, step: Step, task: TaskSpec, work_dir: str, secret: bytes,
               cache: SlotCache | None = None) -> PartOutput:
    """Run one reduce attempt; returns its output file's bytes, records, CRC and counters.

    Every map output segment is fetched into a local file first, so fetched data never waits in
    memory; the merge then reads a block at a time from at most `MERGE_FACTOR` of them.
    """
    engine: Counter = Counter()
    cache = cache if cache is not None else SlotCache(max_bytes=0)
    broadcast = cache.broadcast(task.job_id, job, engine)
    partition = task.index
    attempt_dir = os.path.join(work_dir, task.job_id, task.attempt_id)
    os.makedirs(attempt_dir, exist_ok=True)
    try:
        runs = _fetch_all(task, partition, attempt_dir, secret)
        out_path = outputs.attempt_path(task.output, task.job_id, task.attempt_id, partition)
        result = reduce_to_file(step, runs, partition, out_path, task.output_format, task.params, broadcast,
                                task.storage_options, engine, attempt_dir, frozenset(task.skip))
    finally:
        shutil.rmtree(attempt_dir, ignore_errors=True)
    return result


@_rare_collections()
def reduce_to_file(step: Step, runs: list[Run], partition: int, out_path: str, output_format: str | outputs.OutputFormat,
                   params: dict, broadcast: Any, storage_options: dict | None, engine: Counter,
                   tmp_dir: str, skip: frozenset = frozenset()) -> PartOutput:
    """Merge one partition's sorted runs (given in map-index order; intermediate merge passes write to
    `tmp_dir`), reduce each key group but those numbered in `skip` and write `out_path`; every runner
    calls this.
    """
    for run in runs:
        engine["reduce_input_records"] += run.records
        engine["shuffle_bytes"] += run.length
    ctx = context.TaskContext(params, broadcast=broadcast)
    _watched[1] = engine
    context.activate(ctx)  # the combiner may run in merge passes
    try:
        merged = merge_runs(runs, _guarded_combiner(sorting.shuffle_combiner(step)), tmp_dir, engine, "reduce_merge_passes")
        groups = sorting.reduce_groups(step, group_by_key(merged))
        stats = outputs.write_pairs(out_path, output_format, _reduce(step, groups, engine, skip), storage_options)
    finally:
        context.activate(None)
    engine["reduce_output_records"] += stats["records"]
    engine["output_bytes"] += stats["bytes"]
    return PartOutput(stats["bytes"], stats["records"], stats["crc32"], _counter_list(ctx, engine))


def _fetch_all(task: TaskSpec, partition: int, attempt_dir: str, secret: bytes) -> list[Run]:
    runs = []
    for source in task.sources:
        path = os.path.join(attempt_dir, f"m{source.map_index:05d}.run")
        with open(path, "wb") as out:
            got = fetch_segment(source.address, secret, task.job_id, source.attempt_id, partition, source.map_index, out)
        runs.append(Run(path, 0, got.length, got.records, source.map_index))
    return runs


def _reduce(step: Step, groups: Iterator, engine: Counter, skip: frozenset) -> Iterator[tuple]:
    reducer = step.reducer
    key: Any = None
    number = -1
    if step.reduce_partition is not None:
        yield from _reduce_partition(step, groups, engine)
        return
    try:
        for number, (key, values) in enumerate(groups):
            engine["reduce_input_groups"] += 1
            if skip and number in skip:
                engine["reduce_skipped_groups"] += 1
                continue
            if reducer is None:
                for value in values:
                    yield key, value
            else:
                for out_key, out_value in reducer(key, values):
                    yield out_key, out_value
    except MrEngineError:
        raise
    except Exception as exc:
        record = BadRecord(number, f"key {key!r}", _record_text(key)) if reducer is not None else None
        raise _user_error(exc, "reducer", f"while reducing key {key!r}", record) from None


def _reduce_partition(step: Step, groups: Iterator, engine: Counter) -> Iterator[tuple]:
    """A `reduce_partition(groups)` step: one call for the whole reduce task."""
    where = ["before its first key"]

    def counted():
        for key, values in groups:
            engine["reduce_input_groups"] += 1
            where[0] = f"while reducing key {key!r}"
            yield key, values
        where[0] = "after its last key"

    try:
        for out_key, out_value in step.reduce_partition(counted()):
            yield out_key, out_value
    except MrEngineError:
        raise
    except Exception as exc:
        raise _user_error(exc, "reduce_partition", where[0]) from None
