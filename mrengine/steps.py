"""The step lifecycle every runner shares, so a runner only schedules tasks and moves bytes.

    spec = step_spec(job, i, inputs, output, opts)   # what the step runs on: the same for every runner
    spec, splits = plan(spec)                        # list the inputs, cut the splits
    ... the runner runs one map task per split and one reduce task per partition (a map-only step:
        none; each map writes its part) ...
    manifest = finish(spec, runner_job_id, winners, maps, counters)   # parts, counters, _SUCCESS, commit

`run_steps` chains a job's steps, each reading the previous one's output (msgpack files under the
output's `_temporary/`). The native master runs `plan` on submit and commits through `StepCommit`
task by task as reduces (a map-only step's maps) win (on its committer thread); the Spark and in-process runners call
`finish` once their tasks are done.
"""

from __future__ import annotations

import getpass
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from . import outputs
from .errors import JobDefinitionError, StorageError
from .inputs import DEFAULT_SPLIT_SIZE, InputFormat, Split, input_format, list_inputs, make_splits
from .job import JobSpec, Step
from .messages import DEFAULT_LOG_LEVEL, DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_TIMEOUT, PartOutput, StepSpec, StepStatus
from .sampling import with_range_partitioner

DEFAULT_REDUCERS = 2
DEFAULT_SORT_BUFFER_MB = 100


@dataclass
class RunOptions:
    reducers: int = DEFAULT_REDUCERS
    split_size: int = DEFAULT_SPLIT_SIZE
    params: dict = field(default_factory=dict)
    storage_options: dict = field(default_factory=dict)
    sort_buffer_mb: int = DEFAULT_SORT_BUFFER_MB
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    overwrite: bool = False
    log_level: str = DEFAULT_LOG_LEVEL  # of the log records an attempt's log keeps
    task_timeout: float = DEFAULT_TASK_TIMEOUT
    task_memory_mb: int | None = None  # None: the worker's default (limits.default_task_memory_mb)
    skip_bad_records: int = 0  # bad records each step may skip (`--skip-bad-records`); 0: a bad record fails the job


@dataclass
class Summary:
    job: str
    output: str
    elapsed: float = 0.0
    maps: int = 0
    reduces: int = 0
    attempts: int = 0
    counters: Counter = field(default_factory=Counter)
    parts: dict = field(default_factory=dict)
    excluded: list = field(default_factory=list)  # "worker: why", each worker a step stopped using
    skipped: int = 0  # bad records skipped, over all steps ...
    skipped_files: list = field(default_factory=list)  # ... and where they are listed

    def lines(self, all_counters: bool = False) -> list[str]:
        """The summary; the job's own counters at the end, with `all_counters` mrengine's too."""
        c = self.counters
        out = [
            f"job {self.job} succeeded in {self.elapsed:.2f}s -> {self.output}",
            f"  tasks: {self.maps} map, {self.reduces} reduce ({self.attempts} attempts)",
            f"  input: {c['mrengine', 'map_input_records']} records, {c['mrengine', 'map_input_bytes']} bytes",
            f"  output: {sum(p['records'] for p in self.parts.values())} records, "
            f"{sum(p['bytes'] for p in self.parts.values())} bytes in {len(self.parts)} part files",
        ]
        out += [f"  worker excluded: {why}" for why in self.excluded]
        if self.skipped:
            plural = "s" * (self.skipped != 1)
            out.append(f"  skipped {self.skipped} bad record{plural} (see {', '.join(self.skipped_files)})")
        return out + counter_lines(c, all_counters)


def counter_lines(counters: Counter, all_counters: bool = False) -> list[str]:
    """The job's own counters, one line each, for a summary; with `all_counters` mrengine's too, first."""
    shown = sorted(((g != "mrengine", g, n), v) for (g, n), v in counters.items() if all_counters or g != "mrengine")
    return ["  counters:", *(f"    {g}/{n} = {v}" for (_, g, n), v in shown)] if shown else []


def step_label(job: JobSpec, index: int) -> str:
    return job.name if len(job.steps) == 1 else f"{job.name} step {index + 1}/{len(job.steps)}"


# ---------------------------------------------------------------- plan


def step_spec(job: JobSpec, index: int, inputs: list[str], output: str, opts: RunOptions) -> StepSpec:
    """What one step of a job runs on: the same for every runner, so every runner gets the same bytes out.

    A `total_order` step's cut points are sampled from its input here, so every runner partitions by them.
    """
    step = job.steps[index]
    last = index == len(job.steps) - 1
    fmt = job.input_format if index == 0 else "msgpack"
    _check_reader(job, step, input_format(fmt))
    spec = StepSpec(
        job_bytes=b"", job_name=job.name, step=index,
        inputs=list(inputs), input_format=None if index == 0 else "msgpack",
        splittable=input_format(fmt).splittable, output=output,
        output_format=job.output_format if last else "msgpack",
        num_reducers=reducer_count(step, opts), split_size=opts.split_size,
        params=opts.params, storage_options=opts.storage_options,
        sort_buffer_bytes=opts.sort_buffer_mb * 1024 * 1024, max_attempts=opts.max_attempts,
        log_level=opts.log_level, user=getpass.getuser(), job_file=job.path,
        overwrite=opts.overwrite, task_timeout=opts.task_timeout, task_memory_mb=opts.task_memory_mb,
        skip_bad_records=opts.skip_bad_records,
    )
    if step.total_order:
        job = with_range_partitioner(job, index, _splits(spec), resolve_input_format(spec.input_format, job),
                                     spec.num_reducers, opts.params, opts.storage_options)
    return replace(spec, job_bytes=job.dumps())


def _check_reader(job: JobSpec, step: Step, fmt: InputFormat) -> None:
    """A format whose blocks are no records (text_blocks) needs a map_split to read them."""
    if fmt.map_split_only and step.map_split is None:
        has = "defines mapper(key, value), which takes" if step.mapper is not None else "has no map_split, so its records would be"
        raise JobDefinitionError(
            f"job file {job.path}: input_format {fmt.name!r} hands map_split(blocks) whole blocks of lines, and this "
            f"step {has} one record at a time; use input_format = 'text' (one line per record) with a mapper, or "
            "define map_split(blocks) instead (e.g. `for block in blocks: counts.update(block.split())`)")


def reducer_count(step: Step, opts: RunOptions) -> int:
    """The step's reducer count: its own (0 for a map-only step) or the run's (`--reducers`)."""
    return opts.reducers if step.num_reducers is None else step.num_reducers


def plan(spec: StepSpec) -> tuple[StepSpec, list[Split]]:
    """The step as the runner runs it: the spec and its splits, the inputs listed (files, directories,
    globs) and cut by the format's rule. A step of `num_reducers` 0 is map-only: it has no reduce tasks,
    and map task i writes part i (`executor.map_to_part`), committed as a reduce's part is."""
    return spec, _splits(spec)


def _splits(spec: StepSpec) -> list[Split]:
    return make_splits(list_inputs(spec.inputs, spec.storage_options), spec.split_size, spec.splittable)


def resolve_input_format(name: str | None, job: JobSpec) -> InputFormat:
    """The input format a task reads with: the spec's, or (None) the job file's own."""
    return input_format(name if name is not None else job.input_format)


# ---------------------------------------------------------------- finish


def sum_counters(counter_lists: Iterable[list]) -> list:
    """[group, name, value] triples summed over the given lists (each a winning attempt's), sorted."""
    total = CounterSum()
    for counters in counter_lists:
        total.add(counters)
    return total.total()


class CounterSum:
    """The sum of winning attempts' counters, kept as winners come and are replaced (a map whose output
    was lost has its counters replaced by its new winner's): a master's status poll then costs the same
    whatever the job's size. A counter goes once no list in the sum names it, as if summed afresh.

        >>> total = CounterSum()
        >>> total.add([["job", "lines", 3], ["job", "odd", 1]]); total.add([["job", "lines", 4]])
        >>> total.remove([["job", "lines", 3], ["job", "odd", 1]]); total.total()
        [['job', 'lines', 4]]
    """

    def __init__(self):
        self._sums: Counter = Counter()  # (group, name) -> value
        self._named: Counter = Counter()  # (group, name) -> how many of the lists in the sum name it

    def add(self, counters: list) -> None:
        for group, name, n in counters:
            self._sums[group, name] += n
            self._named[group, name] += 1

    def remove(self, counters: list) -> None:
        """Take out a list added before."""
        for group, name, n in counters:
            key = (group, name)
            self._sums[key] -= n
            self._named[key] -= 1
            if not self._named[key]:
                del self._sums[key], self._named[key]

    def total(self) -> list:
        """[group, name, value] triples, sorted."""
        return [[g, n, v] for (g, n), v in sorted(self._sums.items())]


def manifest(spec: StepSpec, parts: list[PartOutput], maps: int, counters: list) -> dict:
    """What `_SUCCESS` says about a step's output (`parts` in partition order); every runner writes this."""
    return {"job": spec.job_name, "step": spec.step, "parts": {outputs.part_name(i): p.manifest_entry()
                                                                for i, p in enumerate(parts)},
            "maps": maps, "reduces": spec.num_reducers, "counters": counters, "format": spec.output_format}


def failed_on_all(task: str, attempts: int, last_error: str, workers: Iterable[str] = ()) -> str:
    """The message of a task that failed as often as it may."""
    workers = sorted(workers)
    on = f" (on worker{'s' * (len(workers) > 1)} {', '.join(workers)})" if workers else ""
    return f"{task} failed on all {attempts} attempts{on}; the last error: {last_error}"


class StepCommit:
    """The commit protocol of one runner job (a master job, a Spark job) writing `spec.output`."""

    def __init__(self, spec: StepSpec, job_id: str):
        self.spec, self.job_id = spec, job_id
        self.published: dict[int, dict | None] = {}  # partition -> the part file it committed (outputs.commit_task)

    def task(self, partition: int, attempt_id: str) -> None:
        """Publish a winning attempt's file as its part file (a reduce's, or a map-only step's map's:
        map i writes part i); with --overwrite the earlier result
        goes first, so none of its parts survives beside the new ones."""
        if self.spec.overwrite and not self.published:
            outputs.clear_result(self.spec.output, self.spec.storage_options, self.spec.step)
        self.published[partition] = outputs.commit_task(self.spec.output, self.job_id, attempt_id, partition,
                                                        self.spec.storage_options)

    def job(self, step_manifest: dict) -> None:
        """Remove the temporary files and write `_SUCCESS`, last."""
        outputs.commit_job(self.spec.output, self.job_id, step_manifest, self.spec.storage_options)

    def abort(self) -> None:
        """Undo: the committed parts (while still the files this job published) and the temporary files go."""
        outputs.abort_job(self.spec.output, self.job_id, self.published, self.spec.storage_options)

    def discard(self, attempt_id: str) -> None:
        """Remove what a losing or failed attempt wrote."""
        outputs.discard_attempt(self.spec.output, self.job_id, attempt_id, self.spec.storage_options)


def finish(spec: StepSpec, job_id: str, winners: list[tuple[str, PartOutput]], maps: int,
           map_counters: Iterable[list], before_success: Callable[[dict], None] | None = None) -> dict:
    """Commit a step whose tasks are done: `winners[p]` is (attempt id, result) of partition p's winning
    reduce attempt (of a map-only step, map p's), `map_counters` the winning map attempts' counters (of
    a map-only step, none: its winners' results hold them). `before_success(manifest)` runs once the
    parts are committed, before `_SUCCESS` is written (the job's report goes there). Returns the manifest."""
    commit = StepCommit(spec, job_id)
    parts = [part for _, part in winners]
    step_manifest = manifest(spec, parts, maps, sum_counters([*map_counters, *(p.counters for p in parts)]))
    try:
        for partition, (attempt_id, _) in enumerate(winners):
            commit.task(partition, attempt_id)
        if before_success is not None:
            before_success(step_manifest)
        commit.job(step_manifest)
    except Exception as exc:
        commit.abort()
        raise StorageError(f"committing the output to {spec.output} failed: {exc}") from None
    return step_manifest


# ---------------------------------------------------------------- a job's steps, one after another


def run_steps(job: JobSpec, inputs: list[str], output: str, opts: RunOptions,
              run_step: Callable[[StepSpec, str], StepStatus]) -> Summary:
    """Run a job's steps one after another, each reading the previous one's output.

    `run_step(spec, label)` runs one step to the end and returns its final `StepStatus`. Every runner
    chains steps through here.
    """
    outputs.check_output_dir(output, opts.overwrite, opts.storage_options)
    summary = Summary(job.name, output)
    started = time.monotonic()
    try:
        step_inputs = inputs
        for i in range(len(job.steps)):
            step_output = output if i == len(job.steps) - 1 else outputs.step_dir(output, i)
            spec = replace(step_spec(job, i, step_inputs, step_output, opts), job_output=output)
            status = run_step(spec, step_label(job, i))
            summary.maps += status.counts.maps
            summary.reduces += status.counts.reduces
            summary.attempts += status.counts.attempts
            summary.excluded += status.excluded
            for g, n, v in status.counters:
                if g != "mrengine" or i == 0 or not n.startswith("map_input"):
                    summary.counters[g, n] += v
            step_inputs = [step_output]
            skipped = status.manifest.get("skipped")
            if skipped:
                summary.skipped += skipped["records"]
                summary.skipped_files.append(outputs.join(output, skipped["file"]))
        summary.parts = status.manifest["parts"]
    finally:
        if len(job.steps) > 1:
            outputs.remove_step_dirs(output, len(job.steps) - 1, opts.storage_options)
    summary.elapsed = time.monotonic() - started
    return summary
