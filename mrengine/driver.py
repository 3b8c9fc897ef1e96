"""Submitting a job to a master and following it to the end.

A job of several steps runs as one master job per step, each step reading the previous one's output
(msgpack files under the output's `_temporary/`). Progress goes to stderr: one updating line on a
terminal, a line per change (at most one a second) otherwise.
"""

from __future__ import annotations

import sys
import time

from . import comm
from .errors import ClusterError, RecordError, TaskFailedError
from .messages import (ClusterStatus, JobStatusRequest, Kill, LogsRequest, StatusRequest, StepSpec, StepStatus, Submit, Submitted,
                       from_wire, to_wire)
from .runner import Runner
from .steps import RunOptions, Summary  # noqa: F401  (the driver's options and result, for its callers)

STATUS_WAIT = 0.2  # the longest a status request waits for the job's end: the progress line's refresh
SUBMIT_TIMEOUT = 600.0


class Progress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = ""
        self._last_time = 0.0
        self._last_state = ""

    BAR = 20  # characters of the live bar

    def update(self, label: str, status: StepStatus) -> None:
        c = status.counts
        done, total = c.maps_done + c.reduces_done, c.maps + c.reduces
        fraction = done / total if total else 1.0
        failed = f"  failed {c.attempts_failed}" if c.attempts_failed else ""
        state = (f"map {c.maps_done}/{c.maps}  reduce {c.reduces_done}/{c.reduces}  "
                 f"workers {status.workers}  {fraction:.0%}  running {c.maps_running + c.reduces_running}{failed}")
        line = f"[{label}] {state}  {status.elapsed:.1f}s{eta(status.elapsed, fraction)}"
        if self.tty:
            filled = round(fraction * self.BAR)
            bar = f"[{label}] [{'#' * filled}{'.' * (self.BAR - filled)}] " + line[len(label) + 3:]
            self.stream.write("\r" + bar.ljust(len(self._last)))
            self.stream.flush()
            self._last = bar
        else:
            # A line per change of state, at most one a second: the clock alone is no change.
            now = time.monotonic()
            changed = state != self._last_state
            if changed and (now - self._last_time >= 1.0 or status.state != "running") or not self._last:
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last, self._last_time, self._last_state = line, now, state

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
        self._last = ""


def eta(elapsed: float, fraction: float) -> str:
    """"  ETA 12s" from the share of tasks done so far; nothing before the first task is done or after the last."""
    if not 0 < fraction < 1:
        return ""
    return f"  ETA {elapsed * (1 - fraction) / fraction:.0f}s"


def connect_master(address: str, secret: bytes) -> comm.Connection:
    """An authenticated connection to the master at `address`, proven to be a master by a status
    request: a worker's shuffle port holds the same secret but hangs up on anything but a fetch."""
    try:
        conn = comm.connect(address, secret)
    except ClusterError as exc:
        raise ClusterError(f"{exc.message}; check --master, and that `mrengine master` runs there") from None
    try:
        conn.request(to_wire(StatusRequest(tasks=False)))
    except comm.ConnectionClosed:
        conn.close()
        raise ClusterError(f"{address} is an mrengine endpoint but not a master (it hung up on a status request; "
                           f"a worker's shuffle port does): give the master's HOST:PORT to --master") from None
    return conn


def cluster_status(conn: comm.Connection, tasks: bool = False) -> ClusterStatus:
    """The master's workers and master jobs (with `tasks`, finished jobs' tasks too)."""
    return from_wire(conn.request(to_wire(StatusRequest(tasks=tasks))))


def kill_job(conn: comm.Connection, job_id: str) -> None:
    """Cancel a running master job; the master's refusal (no such job, not running) is raised."""
    conn.request(to_wire(Kill(job_id)))


def attempt_logs(conn: comm.Connection, job_id: str, task: str | None) -> list[tuple[str, str]]:
    """(attempt id, output) of a master job's finished attempts (of `task` alone); the master's refusal is raised."""
    return [tuple(pair) for pair in from_wire(conn.request(to_wire(LogsRequest(job_id, task)))).attempts]


class Driver(Runner):
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

    def param_server_endpoint(self) -> tuple[str, bytes]:
        """Where a `main(ctx)` session's parameter server listens (the interface this driver reaches the
        master on, so workers reach it too) and the cluster secret it authenticates tasks with."""
        return self.conn.sock.getsockname()[0], self.secret

    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        """Submit one step as a master job and follow it to its end; returns its final status."""
        conn = self.conn
        timeout = conn.sock.gettimeout()
        conn.settimeout(SUBMIT_TIMEOUT)  # the master lists every input first: a big bucket takes a while
        submitted: Submitted = from_wire(conn.request(to_wire(Submit(spec))))
        conn.settimeout(timeout)
        try:
            while True:
                request = JobStatusRequest(submitted.job_id, wait=STATUS_WAIT)
                status: StepStatus = from_wire(conn.request(to_wire(request)))
                self.progress.update(label, status)
                if status.state != "running":
                    break
        finally:
            self.progress.done()
        if status.state == "cancelled":
            raise ClusterError(f"job {spec.job_name} ({submitted.job_id}) was {status.error.message}")
        if status.state == "failed":
            error = status.error
            if error.final:
                raise RecordError(f"job {spec.job_name} failed: {error.message}")
            raise TaskFailedError(f"job {spec.job_name} failed: {error.message}", label, 0, error.traceback)
        return status
