"""Submitting a job to a master and following it to the end.

A job of several steps runs as one master job per step, each step reading the previous one's output
(msgpack files under the output's `_temporary/`). Progress goes to stderr: one updating line on a
terminal, a line per change (at most one a second) otherwise.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from . import comm, outputs
from .errors import ClusterError, RecordError, TaskFailedError
from .inputs import DEFAULT_SPLIT_SIZE, input_format
from .job import JobSpec
from .sampling import with_range_partitioner

POLL_SECONDS = 0.05
SUBMIT_TIMEOUT = 600.0


@dataclass
class RunOptions:
    reducers: int = 2
    split_size: int = DEFAULT_SPLIT_SIZE
    params: dict = field(default_factory=dict)
    storage_options: dict = field(default_factory=dict)
    sort_buffer_mb: int = 100
    max_attempts: int = 4
    overwrite: bool = False


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
        return out + counter_lines(c, all_counters)


def counter_lines(counters: Counter, all_counters: bool = False) -> list[str]:
    """The job's own counters, one line each, for a summary; with `all_counters` mrengine's too, first."""
    shown = sorted(((g != "mrengine", g, n), v) for (g, n), v in counters.items() if all_counters or g != "mrengine")
    return ["  counters:", *(f"    {g}/{n} = {v}" for (_, g, n), v in shown)] if shown else []


class Progress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = ""
        self._last_time = 0.0

    def update(self, label: str, status: dict) -> None:
        c = status["counts"]
        line = (f"[{label}] map {c['maps_done']}/{c['maps']}  reduce {c['reduces_done']}/{c['reduces']}  "
                f"workers {status['workers']}  {status['elapsed']:.1f}s")
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._last)))
            self.stream.flush()
            self._last = line
        else:
            now = time.monotonic()
            changed = line.rsplit("  ", 1)[0] != self._last.rsplit("  ", 1)[0]
            if changed and (now - self._last_time >= 1.0 or status["state"] != "running") or not self._last:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last, self._last_time = line, now

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
        self._last = ""


def step_label(job: JobSpec, index: int) -> str:
    return job.name if len(job.steps) == 1 else f"{job.name} step {index + 1}/{len(job.steps)}"


def step_submission(job: JobSpec, index: int, inputs: list[str], output: str, opts: RunOptions) -> dict:
    """What one step of a job runs on: the same for every runner, so every runner gets the same bytes out."""
    step = job.steps[index]
    last = index == len(job.steps) - 1
    fmt = job.input_format if index == 0 else "msgpack"
    return {
        "job_bytes": job.dumps(), "job_name": job.name, "step": index,
        "inputs": inputs, "input_format": None if index == 0 else "msgpack",
        "splittable": input_format(fmt).splittable, "output": output,
        "output_format": job.output_format if last else "msgpack",
        "num_reducers": _reducers(step, opts), "split_size": opts.split_size,
        "params": opts.params, "storage_options": opts.storage_options,
        "sort_buffer_bytes": opts.sort_buffer_mb * 1024 * 1024, "max_attempts": opts.max_attempts,
    }


def _reducers(step, opts: RunOptions) -> int:
    """The step's reducer count: its own (0 for a map-only step) or --reducers."""
    return opts.reducers if step.num_reducers is None else step.num_reducers


def run_steps(job: JobSpec, inputs: list[str], output: str, opts: RunOptions, run_step) -> Summary:
    """Run a job's steps one after another, each reading the previous one's output.

    `run_step(submission, label)` runs one step to the end and returns its status: {"counts",
    "counters", "manifest"} as the master reports them. Every runner chains steps through here.
    """
    outputs.check_output_dir(output, opts.overwrite, opts.storage_options)
    summary = Summary(job.name, output)
    started = time.monotonic()
    try:
        step_inputs = inputs
        for i in range(len(job.steps)):
            step_output = output if i == len(job.steps) - 1 else outputs.step_dir(output, i)
            step_job = with_range_partitioner(job, i, step_inputs, _reducers(job.steps[i], opts), opts.params,
                                              opts.split_size, opts.storage_options)  # a total_order step's cut points
            status = run_step(step_submission(step_job, i, step_inputs, step_output, opts), step_label(job, i))
            summary.maps += status["counts"]["maps"]
            summary.reduces += status["counts"]["reduces"]
            summary.attempts += status["counts"]["attempts"]
            for g, n, v in status["counters"]:
                if g != "mrengine" or i == 0 or not n.startswith("map_input"):
                    summary.counters[g, n] += v
            step_inputs = [step_output]
        summary.parts = status["manifest"]["parts"]
    finally:
        if len(job.steps) > 1:
            outputs.remove_step_dirs(output, len(job.steps) - 1, opts.storage_options)
    summary.elapsed = time.monotonic() - started
    return summary


def connect_master(address: str, secret: bytes) -> comm.Connection:
    """An authenticated connection to the master at `address`, proven to be a master by a status
    request: a worker's shuffle port holds the same secret but hangs up on anything but a fetch."""
    try:
        conn = comm.connect(address, secret)
    except ClusterError as exc:
        raise ClusterError(f"{exc.message}; check --master, and that `mrengine master` runs there") from None
    try:
        conn.request({"type": "status", "tasks": False})
    except comm.ConnectionClosed:
        conn.close()
        raise ClusterError(f"{address} is an mrengine endpoint but not a master (it hung up on a status request; "
                           f"a worker's shuffle port does): give the master's HOST:PORT to --master") from None
    return conn


class Driver:
    """Runs steps as jobs of a master: `with Driver(address, secret) as driver: driver.run(job, ...)`."""

    def __init__(self, master: str, secret: bytes, progress: Progress | None = None):
        self.master = master
        self.secret = secret
        self.progress = progress or Progress()
        self.conn = None

    def __enter__(self) -> "Driver":
        self.conn = connect_master(self.master, self.secret)
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def run(self, job: JobSpec, inputs: list[str], output: str, opts: RunOptions) -> Summary:
        return run_steps(job, inputs, output, opts, self.run_step)

    def run_step(self, sub: dict, label: str) -> dict:
        """Submit one step (a `step_submission`, plus any fields of its own) as a master job and follow it
        to its end; returns the master's final status."""
        conn = self.conn
        timeout = conn.sock.gettimeout()
        conn.settimeout(SUBMIT_TIMEOUT)  # the master lists every input first: a big bucket takes a while
        reply = conn.request({"type": "submit", **sub})
        conn.settimeout(timeout)
        try:
            while True:
                status = conn.request({"type": "job_status", "job_id": reply["job_id"]})
                self.progress.update(label, status)
                if status["state"] != "running":
                    break
                time.sleep(POLL_SECONDS)
        finally:
            self.progress.done()
        if status["state"] == "failed":
            error = status["error"]
            if error.get("final"):
                raise RecordError(f"job {sub['job_name']} failed: {error['message']}")
            raise TaskFailedError(f"job {sub['job_name']} failed: {error['message']}", label, 0, error.get("traceback", ""))
        return status
