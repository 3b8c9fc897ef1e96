"""An mrjob `MRJob` class as mrengine steps, with mrjob's own code doing the job's part.

Each `MRStep` becomes one mrengine step. Its map task runs the job's `map_pairs` (mapper_init, mapper
or mapper_raw, mapper_final) on the split's lines read with the step's input protocol, writes each
pair with the internal (or output) protocol into a line and, as Hadoop Streaming does, hands the
shuffle the line's bytes up to the first tab as the key and the rest as the value. A combiner runs
once per map task over its sorted output (`combine_pairs`, init and final included), as mrjob's local
runner runs it; the reduce task feeds its partition's lines, sorted by key bytes, to `reduce_pairs`.
`SORT_VALUES` sorts a key's values by their bytes; a step with no reducer is map-only. The steps
pass lines to each other, and the last one's lines are the part files' lines: the bytes mrjob's local
runner writes. Counters go to mrengine's counters; `jobconf_from_env` sees the map task's input file
and, in every task, the job's jobconf (`JOBCONF`, `jobconf()`, `--jobconf`/`-D` among the job's
arguments, the step's `MRStep(jobconf=...)`) as environment variables, dots as underscores, as
mrjob's local runner exports them.

The job travels as one pickled blob inside `_Task` objects, opened only in the task, after
`compat.install()` has made `import mrjob` work on Python 3.12+.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from . import compat

compat.install()

from .. import context  # noqa: E402
from ..commands import pipe_lines  # noqa: E402
from ..errors import JobDefinitionError  # noqa: E402
from ..job import JobSpec, Step, _CodeKeepingPickler  # noqa: E402

_REFUSED_STEPS = {"JarStep": "jar steps (JarStep)", "SparkStep": "Spark steps (SparkStep)",
                  "SparkJarStep": "Spark jar steps (SparkJarStep)", "SparkScriptStep": "Spark script steps (SparkScriptStep)"}


def mrjob_class(module) -> type | None:
    """The MRJob subclass a job module defines (not imports), if any."""
    if "mrjob.job" not in sys.modules:
        return None
    base = sys.modules["mrjob.job"].MRJob
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, base) and v is not base and v.__module__ == module.__name__]
    return found[-1] if found else None


def job_spec(cls: type, path: str, source: str, job_args: list[str]) -> JobSpec:
    """The mrengine job that runs `cls` with the command-line arguments `job_args` as mrjob would."""
    where = f"job file {path}"
    job = _instance(cls, job_args, where)
    _refuse_what_mrengine_cannot_run(job, where)
    steps = job.steps()
    files, task_args = _uploads(job, where)
    blob = _pickled((cls, task_args, files, [_jobconf_env(job, step, i) for i, step in enumerate(steps)]))
    mr_steps = []
    for i, mr_step in enumerate(steps):
        desc = mr_step.description(i)
        last = i == len(steps) - 1
        has_reduce = "reducer" in desc
        raw = i == 0 and bool(mr_step["mapper_raw"])
        mr_steps.append(Step(
            map_split=_MapTask(blob, i, last and not has_reduce, raw),
            reduce_partition=_ReduceTask(blob, i, last) if has_reduce else None,
            num_reducers=None if has_reduce else 0,
            sort_values=bool(job.sort_values()) and has_reduce))
    raw = bool(steps) and bool(steps[0]["mapper_raw"])
    return JobSpec(path=path, source=source, steps=mr_steps, input_format=_whole_file if raw else "text")


def _jobconf_env(job, mr_step, index: int) -> dict[str, str]:
    """A step's jobconf as its tasks' environment variables: what mrjob's runners pass to Hadoop (the
    job's `jobconf()` under its `--jobconf`/`-D` options, under the step's own), dots as underscores."""
    from mrjob.conf import combine_dicts, combine_jobconfs

    jobconf = combine_jobconfs(combine_dicts(job.jobconf(), job.options.jobconf),
                               mr_step.description(index).get("jobconf"))
    return {name.replace(".", "_"): value for name, value in jobconf.items()}


def _instance(cls: type, args: list[str], where: str):
    try:
        return cls(args=list(args))
    except (SystemExit, ValueError) as exc:  # MRJob's argument parser raises ValueError outside its own command line
        reason = f"exit {exc.code}" if isinstance(exc, SystemExit) else str(exc)
        raise JobDefinitionError(f"{where}: mrjob rejected the job's arguments {' '.join(args)!r} ({reason}); give "
                                 f"the job's own arguments after --, as in: mrengine run JOB INPUT -o OUT -- --its-option 3") from None


def _refuse_what_mrengine_cannot_run(job, where: str) -> None:
    for i, step in enumerate(job.steps()):
        name = type(step).__name__
        if name in _REFUSED_STEPS:
            raise JobDefinitionError(f"{where}: mrengine cannot run mrjob's {_REFUSED_STEPS[name]}; only MRStep steps run here")
        for task in ("combiner", "reducer"):
            if step.description(i).get(task, {}).get("pre_filter"):
                raise JobDefinitionError(f"{where}: step {i + 1} has a {task}_pre_filter, which mrengine does not run "
                                         f"(mapper_pre_filter and the *_cmd commands it does)")
    for what, value in (("Hadoop input format (HADOOP_INPUT_FORMAT)", job.hadoop_input_format()),
                        ("Hadoop output format (HADOOP_OUTPUT_FORMAT)", job.hadoop_output_format()),
                        ("Hadoop partitioner class (PARTITIONER)", None if job.sort_values() else job.partitioner()),
                        ("jar libraries (LIBJARS)", job.libjars())):
        if value:
            raise JobDefinitionError(f"{where}: mrengine cannot use a {what}: {value!r} is Java code for Hadoop")


def _uploads(job, where: str) -> tuple[dict, list]:
    """The files the tasks' working directory holds ({name: bytes}) and the arguments tasks get."""
    files: dict[str, bytes] = {}
    for path in list(job.files()) + list(job.options.upload_files or ()):
        path, _, name = path.partition("#")
        files[name or os.path.basename(path)] = _read(path, where)
    for path in list(job.dirs()) + list(job.options.upload_dirs or ()):
        path, _, name = path.partition("#")
        top = name or os.path.basename(path.rstrip(os.sep))
        for root, _, names in os.walk(path):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.join(top, os.path.relpath(full, path))] = _read(full, where)
    task_args = []
    for arg in job._non_option_kwargs()["extra_args"]:
        if isinstance(arg, dict):  # a file argument: the task gets the file's name in its working directory
            name = arg.get("name") or os.path.basename(arg["path"])
            files[name] = _read(arg["path"], where)
            arg = name
        task_args.append(arg)
    return files, task_args


def _read(path: str, where: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as f:
            return f.read()
    except OSError as exc:
        raise JobDefinitionError(f"{where}: cannot read the file {path!r} it sends to its tasks: {exc.strerror}") from None


def _pickled(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _CodeKeepingPickler(buffer).dump(obj)
    return buffer.getvalue()


def _whole_file(file, url):
    """mapper_raw's input: one record per file, its URL; the task hands mrjob the path."""
    yield url


# ---------------------------------------------------------------- in the task


class _Task:
    """A step's task side; pickled as (blob, step, last) so unpickling imports this module (and so
    `compat.install()`) before anything of mrjob."""

    def __init__(self, blob: bytes, step: int, last: bool, raw: bool = False):
        self.blob, self.step, self.last, self.raw = blob, step, last, raw

    def __reduce__(self):
        return type(self), (self.blob, self.step, self.last, self.raw)

    @contextmanager
    def job(self, extra_args: list[str] = ()):
        """The MRJob instance, run in a working directory that holds the job's files."""
        import cloudpickle

        cls, task_args, files, jobconf_envs = cloudpickle.loads(self.blob)
        here = os.getcwd()
        work = tempfile.mkdtemp(prefix="mrjob-task-")
        try:
            for name, data in files.items():
                os.makedirs(os.path.dirname(os.path.join(work, name)), exist_ok=True)
                with open(os.path.join(work, name), "wb") as f:
                    f.write(data)
            os.chdir(work)
            with _environment(jobconf_envs[self.step]):
                job = cls(args=list(task_args) + list(extra_args))
                job.increment_counter = _count
                job.set_status = _status
                yield job
        finally:
            os.chdir(here)
            shutil.rmtree(work, ignore_errors=True)

    def out(self, line: bytes) -> tuple:
        """A line the step writes: text for the job's output, bytes for the next step."""
        return None, line.decode("utf-8") if self.last else line


def _count(group, counter, amount=1):
    """MRJob.increment_counter, into mrengine's counters (commas become semicolons, as mrjob does)."""
    if not isinstance(amount, int):
        raise TypeError(f"amount must be an integer, not {amount!r}")
    context.ctx.counter(str(group).replace(",", ";"), str(counter).replace(",", ";"), amount)


def _status(msg):
    print(f"reporter:status:{msg}", file=sys.stderr)


def _split_line(line: bytes) -> tuple:
    """Hadoop's key and value of a line: up to the first tab; a line without one is all key (value None)."""
    key, tab, value = line.partition(b"\t")
    return (key, value) if tab else (key, None)


def _join_line(key: bytes, value: bytes | None) -> bytes:
    return key if value is None else key + b"\t" + value


def _input_env(split) -> dict[str, str]:
    """The variables `jobconf_from_env` reads in a map task, for its split."""
    uri = split.url if "://" in split.url else "file://" + os.path.abspath(split.url)
    return {"mapreduce_map_input_file": uri, "map_input_file": uri,
            "mapreduce_map_input_start": str(split.start), "map_input_start": str(split.start),
            "mapreduce_task_partition": str(split.index), "mapred_task_partition": str(split.index)}


@contextmanager
def _environment(names: dict[str, str]):
    """`os.environ` with `names` set while the task runs, and as it was afterwards."""
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for n, v in saved.items():
            os.environ.pop(n) if v is None else os.environ.__setitem__(n, v)


class _MapTask(_Task):
    """map_split(records): one map task of the step, mrjob's mapper (and combiner) over the split."""

    def __call__(self, records: Iterable) -> Iterator[tuple]:
        split = context.ctx.split
        path = split.url[len("file://"):] if split.url.startswith("file://") else split.url
        lines = (r.encode("utf-8") if isinstance(r, str) else r for r in records)
        # The split's variables win over the job's jobconf, as in mrjob's local runner.
        with self.job([path, split.url] if self.raw else []) as job, _environment(_input_env(split)):
            desc = job.steps()[self.step].description(self.step)
            out = self._map_lines(job, desc, [] if self.raw else lines)
            if "combiner" in desc:
                out = self._combine(job, sorted(out, key=None if job.sort_values() else _line_key))
            if "reducer" not in desc:
                yield from map(self.out, out)
            else:
                yield from map(_split_line, out)

    def _map_lines(self, job, desc: dict, lines: Iterable[bytes]) -> Iterator[bytes]:
        mapper = desc.get("mapper")
        if mapper is None:
            return iter(lines)  # mrjob's identity mapper: lines pass as they are
        if mapper.get("pre_filter"):
            lines = pipe_lines(mapper["pre_filter"], lines)
        if mapper["type"] == "command":
            return pipe_lines(mapper["command"], lines)
        read, write = job.pick_protocols(self.step, "mapper")
        return (write(k, v) for k, v in job.map_pairs((read(line) for line in lines), self.step))

    def _combine(self, job, lines: list[bytes]) -> Iterator[bytes]:
        combiner = job.steps()[self.step].description(self.step)["combiner"]
        if combiner["type"] == "command":
            return pipe_lines(combiner["command"], lines)
        read, write = job.pick_protocols(self.step, "combiner")
        return (write(k, v) for k, v in job.combine_pairs((read(line) for line in lines), self.step))


def _line_key(line: bytes) -> bytes:
    return line.partition(b"\t")[0]


class _ReduceTask(_Task):
    """reduce_partition(groups): one reduce task of the step, mrjob's reducer over its sorted lines."""

    def __call__(self, groups: Iterator[tuple]) -> Iterator[tuple]:
        with self.job() as job:
            lines = (_join_line(key, value) for key, values in groups for value in values)
            reducer = job.steps()[self.step].description(self.step)["reducer"]
            if reducer["type"] == "command":
                yield from map(self.out, pipe_lines(reducer["command"], lines))
                return
            read, write = job.pick_protocols(self.step, "reducer")
            for k, v in job.reduce_pairs((read(line) for line in lines), self.step):
                yield self.out(write(k, v))
