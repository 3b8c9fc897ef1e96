"""Iterative jobs: a job file's `main(ctx)` runs on the driver and calls `ctx.map_reduce(...)` per round.

    import json
    import numpy as np
    from mrengine import ctx

    def gradient(blocks):               # map_split: with csv/tsv/npy input, blocks are 2-D arrays
        w, g, n = ctx.broadcast, 0.0, 0
        for a in blocks:
            x, y = a[:, :-1], a[:, -1]
            g, n = g + x.T @ (x @ w - y), n + len(a)
        return {"grad": g, "n": n}

    def add(key, values):
        yield key, sum(values)

    def main(ctx):
        w = np.zeros(ctx.params["features"])
        for epoch in range(ctx.params.get("epochs", 10)):
            totals = dict(ctx.map_reduce(ctx.inputs, map_split=gradient, reducer=add, combiner=add, broadcast=w))
            w -= ctx.params.get("lr", 0.1) * totals["grad"] / totals["n"]
        with ctx.open("weights.json", "w") as f:
            json.dump(w.tolist(), f)

Each round is one real job, run through the runner's `run_step` (a master job natively, a Spark job
with `--runner spark`), with that runner's retries and failure handling. The rounds of one run form
a session: parsed numeric splits stay in memory between rounds (natively in the workers' slot
processes, which the master prefers for the split next round; on Spark in a persisted RDD), and the
round's `broadcast` value reaches each task process once per round, as `ctx.broadcast`. A round's results
come back to the driver (through msgpack files under the output's `_temporary/`), or go to the
path given as `output=`. Files written with `ctx.open` appear in the output directory, with
`_SUCCESS`, only when `main` returns.
"""

from __future__ import annotations

import inspect
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import cloudpickle

from . import context, outputs, storage
from .messages import SplitPlaces, StepSpec, StepStatus
from .steps import RunOptions, Summary, counter_lines, step_spec
from .errors import MrEngineError, TaskFailedError
from .inputs import MsgpackInput, Split
from .job import JobSpec, _check_formats, _step_from, user_traceback
from .paramserver import endpoint_for_runner, start_for_runner

ENGINE = "mrengine"


@dataclass
class RoundResult:
    """What one `ctx.map_reduce` round gave back.

    Iterating it yields the reducers' (key, value) pairs, in key order within each reducer's share, so
    `dict(result)` makes a lookup table. A round that wrote to an `output=` path has no pairs here.
    `counters` are the round's own, mrengine's included (e.g. `("mrengine", "split_cache_hits")`).
    """

    pairs: list | None
    output: str | None
    counters: Counter
    elapsed: float

    def __iter__(self):
        if self.pairs is None:
            raise TypeError(f"this round wrote its results to {self.output}; read them from there")
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs or ())


@dataclass
class MainSummary(Summary):
    rounds: int = 0
    files: dict = field(default_factory=dict)

    def lines(self, all_counters: bool = False) -> list[str]:
        c = self.counters
        files = ", ".join(f"{name} ({size} bytes)" for name, size in sorted(self.files.items())) or "none"
        return [
            f"job {self.job} succeeded in {self.elapsed:.2f}s -> {self.output}",
            f"  rounds: {self.rounds} ({self.maps} map, {self.reduces} reduce tasks; {self.attempts} attempts)",
            f"  input: {c[ENGINE, 'map_input_records']} records over all rounds; splits read {c[ENGINE, 'split_reads']} "
            f"times, from memory {c[ENGINE, 'split_cache_hits']} times; broadcast loads {c[ENGINE, 'broadcast_loads']}",
            f"  files: {files}",
        ] + counter_lines(c, all_counters)


class DriverContext:
    """The `ctx` that `main(ctx)` gets: `params`, `inputs`, `output`, `counter`, `map_reduce`, `open`."""

    split = None  # as in a task's context, so helpers shared with tasks can look
    broadcast = None

    def __init__(self, run_step: Callable[[StepSpec, str], StepStatus], job: JobSpec, inputs: list[str], output: str,
                 opts: RunOptions, summary: MainSummary):
        self.params = dict(opts.params)
        self.inputs = list(inputs)
        self.output = output
        self.session = uuid.uuid4().hex[:12]
        self.rounds = 0
        self._run_step, self._job, self._opts, self._summary = run_step, job, opts, summary
        # (url, start, end) -> the worker whose map read it last, for runners that report it (native)
        self._locality: dict[tuple, str] = {}

    def counter(self, group: str, name: str, n: int = 1) -> None:
        """Add `n` to the counter `group`/`name` (shown in the summary with the tasks' counters)."""
        self._summary.counters[(str(group), str(name))] += int(n)

    def map_reduce(self, inputs: str | list[str], mapper: Callable | None = None, reducer: Callable | None = None, *,
                   map_split: Callable | None = None, combiner: Callable | None = None,
                   partitioner: Callable | None = None, mapper_init: Callable | None = None,
                   mapper_final: Callable | None = None, num_reducers: int | None = None, broadcast: Any = None,
                   input_format: Any = None, output: str | None = None, output_format: str = "text",
                   locality: bool = True) -> RoundResult:
        """Run one map/reduce round over `inputs` on the runner's cluster and wait for it.

        The functions are those of a job file's step. `broadcast` reaches every task as `ctx.broadcast`.
        Without `output` the results come back (one reducer unless `num_reducers` says otherwise);
        with it they are written there in `output_format`, as any job's output. `locality=False`: do not
        wait for the worker that ran a split last round (for tasks that must all run at once).
        """
        paths = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(paths, (list, tuple)) or not paths or not all(isinstance(p, str) for p in paths):
            raise TypeError(f"map_reduce() inputs must be a path or a non-empty list of paths, not {inputs!r}")
        where = "ctx.map_reduce()"
        collect = output is None
        step = _step_from({"mapper": mapper, "reducer": reducer, "map_split": map_split, "combiner": combiner,
                           "partitioner": partitioner, "mapper_init": mapper_init, "mapper_final": mapper_final,
                           "num_reducers": num_reducers if num_reducers is not None else 1 if collect else None}, where)
        spec = replace(self._job, steps=[step], main=None,
                       input_format=self._job.input_format if input_format is None else input_format,
                       output_format="msgpack" if collect else output_format, session=self.session,
                       broadcast=None if broadcast is None else cloudpickle.dumps(broadcast))
        _check_formats(spec, where)
        self.rounds += 1
        so = self._opts.storage_options
        output = None if collect else storage.absolute_url(output)
        target = outputs.round_dir(self.output, self.session, self.rounds) if collect else output
        if not collect:
            outputs.check_output_dir(output, self._opts.overwrite, so)
        prefer = SplitPlaces.of(self._locality.items()) if locality else SplitPlaces()
        label = f"{self._job.name} round {self.rounds}"
        try:
            round_spec = replace(step_spec(spec, 0, [storage.absolute_url(p) for p in paths], target, self._opts), prefer=prefer,
                                 job_name=label, session=self.session)
            began = time.monotonic()
            status = self._run_step(round_spec, label)
        except TaskFailedError as exc:
            caller = inspect.currentframe().f_back
            raise TaskFailedError(f"{exc.message} (ctx.map_reduce at {caller.f_code.co_filename} line "
                                  f"{caller.f_lineno})", *exc.args[1:]) from None
        self._locality.update(status.map_workers.items())
        counters = Counter({(g, n): v for g, n, v in status.counters})
        s = self._summary
        s.maps += status.counts.maps
        s.reduces += status.counts.reduces
        s.attempts += status.counts.attempts
        s.counters.update(counters)
        pairs = None
        if collect:
            pairs = _read_pairs(target, status.counts.reduces, so)
            outputs.remove_dir(target, so)
        return RoundResult(pairs, None if collect else output, counters, time.monotonic() - began)

    def parameter_server(self, params: dict, *, staleness: int | None = 0, checkpoint_every: int = 0, tasks: int = 0,
                         version: int = 0, clocks: dict | None = None, about: dict | None = None):
        """A parameter server holding `params` (name -> numpy array) for this session's tasks; see
        `mrengine.paramserver`. Use it as a context manager: on leaving, it stops and writes
        `paramserver.json`; every `checkpoint_every` updates it writes `checkpoints/params-*.npz`.
        Tasks connect to its `.address` (send it in the broadcast); `tasks`: how many will (the
        round's splits), so the first do not run ahead before the others start. `version` and
        `clocks` resume from a checkpoint (`paramserver.read_checkpoint`); `about` goes into each one."""
        return start_for_runner(self._run_step, params, self.open, staleness=staleness, checkpoint_every=checkpoint_every,
                                tasks=tasks, version=version, clocks=clocks, about=about)

    def require_parameter_server(self) -> None:
        """Refuse now, before any round has run, if this runner cannot host `parameter_server`: a job that
        will need one calls this first, so a user on such a runner is told at once, not after its first rounds."""
        endpoint_for_runner(self._run_step)

    def open(self, name: str, mode: str = "w"):
        """A new file `name` (a relative path) in the output directory, e.g. `with ctx.open("model.json", "w") as f`.

        It appears there when `main` returns; if `main` fails, it is removed with everything else.
        """
        if mode not in ("w", "wb"):
            raise ValueError(f"ctx.open writes a new file into the output directory: mode must be 'w' or 'wb', not {mode!r}")
        parts = name.split("/") if isinstance(name, str) else []
        if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or name.startswith(("_", ".")):
            raise ValueError(f"ctx.open needs a relative file name inside the output directory, not {name!r} "
                             "(names starting with '_' or '.' are mrengine's)")
        path = outputs.staged_path(self.output, self.session, name)
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        fs, fs_path = storage.filesystem(path, self._opts.storage_options)
        with storage.translated(f"file {name!r} of the output directory", fs, fs_path):
            return storage.create(fs, fs_path, mode, **text)


def _read_pairs(directory: str, partitions: int, storage_options: dict) -> list:
    pairs: list = []
    reader = MsgpackInput()
    for p in range(partitions):
        url = outputs.join(directory, outputs.part_name(p))
        for block in reader.read(Split(p, url, 0, -1, None), storage_options):
            pairs.extend(zip(block.keys, block.values))
    return pairs


def run_main(job: JobSpec, inputs: list[str], output: str, opts: RunOptions, run_step) -> MainSummary:
    """Run the job's `main(ctx)`, each round through `run_step` (as `steps.run_steps` runs a step, so
    any runner can); commit its files and `_SUCCESS` if it returns."""
    so = opts.storage_options
    outputs.check_output_dir(output, opts.overwrite, so)
    summary = MainSummary(job.name, output)
    started = time.monotonic()
    ctx = DriverContext(run_step, job, inputs, output, opts, summary)
    try:
        _call_main(job, ctx)
        summary.rounds = ctx.rounds
        summary.files = outputs.publish_staged(output, ctx.session, so)
        summary.elapsed = time.monotonic() - started
        manifest = {"job": job.name, "rounds": summary.rounds, "files": summary.files,
                    "counters": [[g, n, v] for (g, n), v in sorted(summary.counters.items())]}
        outputs.commit_job(output, ctx.session, manifest, so)
    except BaseException:
        try:
            outputs.abort_job(output, ctx.session, {}, so)
        except Exception:
            pass  # the error that got us here matters more
        raise
    return summary


def _call_main(job: JobSpec, ctx: DriverContext) -> None:
    context.activate(ctx)
    try:
        job.main(ctx)
    except TaskFailedError:
        raise
    except MrEngineError as exc:  # a bad call of ctx.map_reduce, a missing input...: say where it was
        raise type(exc)(f"{exc.message}\n  at {_user_line(exc, job.path)}", *exc.args[1:]) from None
    except Exception as exc:
        raise TaskFailedError(f"main raised {type(exc).__name__}: {exc}", "main", 1, user_traceback(exc)) from None
    finally:
        context.activate(None)


def _user_line(exc: BaseException, path: str) -> str:
    tb, found = exc.__traceback__, f"{path}"
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == path:
            found = f"{path} line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
