"""Unit-testing a job without a cluster: `run_job` runs it in this process and hands back its output.

    >>> from mrengine.testing import run_job
    >>> result = run_job("jobs/wordcount.py", records=["to be or", "not to be"], reducers=1)
    >>> result.pairs
    [('be', 2), ('not', 1), ('or', 1), ('to', 2)]
    >>> result.lines
    ['be\\t2', 'not\\t1', 'or\\t1', 'to\\t2']

Nothing is simulated: the job runs through `Runner.run` (its steps through `steps.run_steps`, or
its `main(ctx)` through `iterative.run_main`) with a runner whose `run_step` runs every map task (`executor.run_map`) and then
every reduce task (`executor.reduce_to_file`) one after another, reading each map output file in
place, and plans and commits the step through `steps` as the other runners do. So splits, record readers, the
partitioner, sort, combiner, spills, merge, reducer, output format and `ctx` (params, counters,
split, broadcast) are the engine's own code: a job of steps writes the part files and `_SUCCESS`
that `mrengine run` writes for the same input and options, and a `main(ctx)` job the same files.
Each task runs once: an exception fails the run at once, with the job's own traceback in the message.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from itertools import count
from types import ModuleType
from typing import Iterable, Iterator

from . import context, outputs, storage
from .cache import SlotCache
from .errors import MrEngineError, TaskFailedError, UserCodeError
from .executor import error_report, reduce_to_file, run_map, run_map_to_part
from .inputs import (CsvInput, InputFormat, JsonLinesInput, MsgpackInput, NpyInput, NumericInput, Split, TextBlocksInput,
                     TextInput, input_format)
from .job import JobSpec, Step, job_from_module, load_job, prime_linecache
from .messages import MapOutput, PartOutput, StepSpec, StepStatus, TaskCounts, TaskSpec
from .runner import Runner
from .shuffle.runs import Run
from .steps import RunOptions, finish, plan
from .tasks import MAP

__all__ = ["run_job", "JobResult", "InProcessRunner"]


@dataclass
class JobResult:
    """What `run_job` gives back.

    `pairs`: the (key, value) pairs the last step's reducers (a map-only step's maps) wrote, as Python
    objects, in part order (part 0's keys in increasing order, then part 1's, ...). `parts`: {part file
    name: bytes} as `mrengine run` writes them; `lines`: the lines of those parts (text and jsonlines
    output).
    `files`: {name: bytes} of the files a `main(ctx)` job wrote with `ctx.open`. `counters`: every
    counter by (group, name), the job's own and mrengine's (group "mrengine").
    """

    pairs: list
    parts: dict
    files: dict
    counters: Counter
    output_format: str

    @property
    def lines(self) -> list[str]:
        if self.output_format == outputs.MsgpackOutput.name:
            raise ValueError("this job writes msgpack, which has no lines; read its pairs")
        return [line for data in self.parts.values() for line in data.decode("utf-8").split("\n")[:-1]]


def run_job(job: str | os.PathLike | ModuleType, inputs: str | os.PathLike | Iterable | None = None, *,
            records: Iterable | None = None, params: dict | None = None, reducers: int | None = None,
            split_size: int | None = None, sort_buffer_mb: int | None = None, output: str | os.PathLike | None = None,
            overwrite: bool = False) -> JobResult:
    """Run a job file (its path, or the imported module) in this process, as
    `mrengine run JOB INPUTS -o OUTPUT --reducers N --split-size S --sort-buffer-mb M -p NAME=VALUE ...` runs it.

    Give the input as `inputs` (paths, directories or globs, as on the command line) or as `records`,
    which are written to a file in the job's input format and read back from it as any input is:
    lines (str) for text, JSON values for jsonlines, (key, value) pairs for msgpack, rows of numbers
    for csv, tsv, npy and numeric input. A text record's key is that temporary file's path.

    `params` are what `-p` gives a job (JSON values by name); the other options default as
    `mrengine run`'s do. With `output` the result stays in that directory, `_SUCCESS` included;
    without it, in a temporary directory that is removed.
    """
    if (inputs is None) == (records is None):
        raise TypeError("run_job() takes inputs (files) or records, not " + ("both" if inputs is not None else "neither"))
    spec = _load(job)
    opts = RunOptions(params=_checked_params(params), overwrite=overwrite,
                      **_positive(reducers=reducers, split_size=split_size, sort_buffer_mb=sort_buffer_mb))
    scratch = tempfile.mkdtemp(prefix="mrengine-test-")
    try:
        out = os.fspath(output) if output is not None else os.path.join(scratch, "output")
        paths = _input_paths(inputs) if inputs is not None else [_write_records(spec, records, scratch)]
        runner = InProcessRunner(os.path.join(scratch, "work"), keep_pairs_of=out)
        try:
            summary = runner.run(spec, paths, out, opts)
            if spec.main is not None:
                parts, files = {}, _read(out, summary.files)
            else:
                parts, files = _read(out, summary.parts), {}
        except TaskFailedError as exc:  # the job's own traceback, where pytest shows the error
            raise TaskFailedError(f"{exc.message}\n{exc.traceback}" if exc.traceback else exc.message,
                                  *exc.args[1:]) from None
        return JobResult(runner.pairs(), parts, files, Counter(summary.counters), spec.output_format)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load(job) -> JobSpec:
    if isinstance(job, ModuleType):
        return job_from_module(job)
    if isinstance(job, (str, os.PathLike)):
        return load_job(os.fspath(job))
    raise TypeError(f"run_job() needs a job file's path or its module, not {type(job).__name__}")


def _checked_params(params: dict | None) -> dict:
    params = {} if params is None else params
    if not isinstance(params, dict) or not all(isinstance(name, str) for name in params):
        raise TypeError(f"run_job() params must be a dict of values by name, not {params!r}")
    try:  # as they reach the tasks: -p values are JSON, and tasks get them through msgpack (tuples as lists)
        return json.loads(json.dumps(params))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"run_job() params must hold what -p NAME=VALUE can give a job (str, numbers, bools, None, "
                        f"lists and dicts of them): {exc}") from None


def _positive(**options) -> dict:
    for name, value in options.items():
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"run_job() {name} must be a positive int, not {value!r}")
    return {name: value for name, value in options.items() if value is not None}


def _input_paths(inputs) -> list[str]:
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise TypeError(f"run_job() inputs must be a path or a non-empty list of paths, not {inputs!r}; "
                        "pass records=[...] to give the records themselves")
    return [os.fspath(p) for p in paths]


def _read(out: str, names) -> dict:
    fs, path = storage.filesystem(out)
    return {name: fs.cat_file(outputs.join(path, name)) for name in sorted(names)}


# ---------------------------------------------------------------- records to an input file


def _write_records(job: JobSpec, records: Iterable, directory: str) -> str:
    """A file holding `records` as the job's input format reads them."""
    fmt = input_format(job.input_format)
    records = list(records)
    for kind, (suffix, encode) in _RECORD_FILES.items():
        if isinstance(fmt, kind):
            path = os.path.join(directory, "input", "records" + (suffix or f".{fmt.name}"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(encode(records, fmt))
            return path
    raise TypeError(f"run_job() cannot write records for the input format {fmt.name!r}, which reads files its own "
                    "way; give inputs=[paths of such files]")


def _lines(records: list, fmt: InputFormat) -> bytes:
    for r in records:
        if not isinstance(r, str) or "\n" in r or r.endswith("\r"):
            raise ValueError(f"text records are lines: str without a newline (and not ending in \\r), not {r!r}")
    return "".join(r + "\n" for r in records).encode("utf-8")


def _json_lines(records: list, fmt: InputFormat) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _msgpack_pairs(records: list, fmt: InputFormat) -> bytes:
    if not all(isinstance(r, (tuple, list)) and len(r) == 2 for r in records):
        raise ValueError("msgpack records are (key, value) pairs")
    return outputs.MsgpackOutput().encode(records)


def _npy(records: list, fmt: InputFormat) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(records))
    return buffer.getvalue()


def _delimited(records: list, fmt: CsvInput) -> bytes:
    import numpy as np

    text = io.StringIO()
    np.savetxt(text, np.asarray(records, dtype=np.float64), delimiter=fmt.delimiter, fmt="%.17g")  # exact
    return text.getvalue().encode("utf-8")


# The file each format reads records from (a suffix of None: the format's name; TsvInput is a CsvInput).
_RECORD_FILES = {
    TextInput: (".txt", _lines), TextBlocksInput: (".txt", _lines), JsonLinesInput: (".jsonl", _json_lines), MsgpackInput: (".msgpack", _msgpack_pairs),
    NumericInput: (".npy", _npy), NpyInput: (".npy", _npy), CsvInput: (None, _delimited),
}


class InProcessRunner(Runner):
    """A runner whose `run_step(submission, label)` runs the step's tasks one by one in this process.

    `keep_pairs_of`: the output directory whose written pairs (by reducers, or a map-only step's maps)
    to keep, as Python objects (`pairs()`).
    """

    def __init__(self, work_dir: str, keep_pairs_of: str | None = None):
        self.work_dir = work_dir
        self.cache = SlotCache(on_load=prime_linecache)  # as a slot process keeps: jobs, broadcasts, parsed splits
        self.keep_pairs_of = keep_pairs_of
        self._kept: dict[int, list] = {}
        self._ids = count(1)
        self._run = uuid.uuid4().hex[:8]

    def pairs(self) -> list:
        return [pair for _, kept in sorted(self._kept.items()) for pair in kept]

    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        """Run one step, task by task; returns its final status."""
        spec, splits = plan(spec)
        job_id = f"local-{self._run}-{next(self._ids):04d}"
        job = self.cache.job(job_id, spec.job_bytes)
        step = job.steps[spec.step]
        previous = context.current()  # a main(ctx) job's context, which the tasks' own replace
        try:
            if spec.num_reducers:
                maps = [self._map(job, step, spec, job_id, split, label) for split in splits]
                reduces = [self._reduce(job, step, spec, job_id, p, maps, label) for p in range(spec.num_reducers)]
                winners = [(_reduce_attempt(p), part) for p, part in enumerate(reduces)]
                map_counters = [output.counters for _, output in maps]
            else:  # map-only: each map writes its part, there is nothing to reduce
                winners = [(_map_attempt(s.index), self._map_to_part(job, step, spec, job_id, s, label))
                           for s in splits]
                map_counters = []
            manifest = finish(spec, job_id, winners, len(splits), map_counters)
        except BaseException:
            with suppress(Exception):  # the error that got us here is the one to report
                outputs.abort_job(spec.output, job_id, {}, spec.storage_options)
            raise
        finally:
            context.activate(previous)
            shutil.rmtree(os.path.join(self.work_dir, job_id), ignore_errors=True)
        counts = TaskCounts(maps=len(splits), reduces=spec.num_reducers, attempts=len(splits) + spec.num_reducers)
        return StepStatus("succeeded", counts, manifest["counters"], manifest=manifest)

    def _map(self, job: JobSpec, step: Step, spec: StepSpec, job_id: str, split: Split,
             label: str) -> tuple[str, MapOutput]:
        with _task(spec, label, _map_name(split)):
            return run_map(job, step, self._map_task(spec, job_id, split), self.work_dir, self.cache)

    def _map_to_part(self, job: JobSpec, step: Step, spec: StepSpec, job_id: str, split: Split,
                     label: str) -> PartOutput:
        task = replace(self._map_task(spec, job_id, split), output=spec.output, output_format=spec.output_format)
        with _task(spec, label, _map_name(split)):
            return run_map_to_part(job, step, task, self.cache, self._keeping(spec, split.index))

    def _map_task(self, spec: StepSpec, job_id: str, split: Split) -> TaskSpec:
        return TaskSpec(job_id, _map_attempt(split.index), MAP, split.index, spec.step, spec.params,
                        spec.storage_options, spec.num_reducers, split=split, input_format=spec.input_format,
                        sort_buffer_bytes=spec.sort_buffer_bytes)

    def _reduce(self, job: JobSpec, step: Step, spec: StepSpec, job_id: str, partition: int, maps: list,
                label: str) -> PartOutput:
        runs = []  # each map's segment for this partition, read in place, in map order as fetched runs are
        for map_index, (path, output) in enumerate(maps):
            segment = output.segments()[partition]
            if segment.length:
                runs.append(Run(path, segment.offset, segment.length, segment.records, map_index))
        attempt_id = _reduce_attempt(partition)
        tmp_dir = os.path.join(self.work_dir, job_id, attempt_id)
        os.makedirs(tmp_dir, exist_ok=True)
        fmt = self._keeping(spec, partition) or spec.output_format
        engine: Counter = Counter()
        with _task(spec, label, f"reduce task {partition}"):
            broadcast = self.cache.broadcast(job_id, job, engine)
            out_path = outputs.attempt_path(spec.output, job_id, attempt_id, partition)
            return reduce_to_file(step, runs, partition, out_path, fmt, spec.params, broadcast, spec.storage_options,
                                  engine, tmp_dir)

    def _keeping(self, spec: StepSpec, partition: int) -> outputs.OutputFormat | None:
        """The format that writes `partition` of the output whose pairs to keep, keeping them; else None."""
        if spec.output != self.keep_pairs_of:
            return None
        return _Keeping(outputs.OUTPUT_FORMATS[spec.output_format](), self._kept.setdefault(partition, []))


def _map_attempt(index: int) -> str:
    return f"m{index:05d}"


def _map_name(split: Split) -> str:
    return f"map task {split.index} (split {split.describe()})"


def _reduce_attempt(partition: int) -> str:
    return f"r{partition:05d}"


class _Keeping(outputs.OutputFormat):
    """Writes as `fmt` does, keeping the pairs it writes."""

    def __init__(self, fmt: outputs.OutputFormat, kept: list):
        self.fmt, self.kept, self.name = fmt, kept, fmt.name

    def encode(self, pairs: list) -> bytes:
        self.kept.extend(pairs)
        return self.fmt.encode(pairs)


@contextmanager
def _task(spec: StepSpec, label: str, task: str) -> Iterator[None]:
    """A task's failure as the driver reports a task that failed on every attempt, naming the task."""
    try:
        yield
    except UserCodeError as exc:
        report = error_report(exc)
        raise TaskFailedError(f"job {spec.job_name} failed: {task} failed: {report.message}", label, 1,
                              report.traceback) from None
    except TaskFailedError:
        raise
    except MrEngineError as exc:
        raise type(exc)(f"{task}: {exc.message}", *exc.args[1:]) from None
