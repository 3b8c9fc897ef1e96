"""A parameter server for iterative jobs: named numpy arrays held by one server, pulled and updated by
the tasks of a round while they run (Li et al., OSDI 2014; Ho et al.'s stale synchronous parallel,
NIPS 2013).

    server = ctx.parameter_server({"w": np.zeros(30)}, staleness=4)       # in main(ctx), on the driver
    ctx.map_reduce(ctx.inputs, map_split=train, ..., broadcast={"server": server.address})
    w = server.pull()["w"]

    def train(blocks):                                                    # in a map task
        with paramserver.connect(ctx.broadcast["server"], task=ctx.split.index) as ps:
            step, params = ps.join()
            while step < steps:
                step, params = ps.push(step, {"w": delta_computed_from(params, step)})
            ps.finish()

Clocks and staleness. A task's clock is the number of its updates the server has applied. The server
answers a task at clock c only once every other *participant* is at clock c - staleness or later, so
no task runs more than `staleness` updates ahead of the slowest (0: lock step; None: never wait).
Participants are the tasks that have joined, not finished, and hold an open connection: a task whose
process died holds nobody back until another attempt of it joins again, so a lost worker cannot
stall the round while its task waits for a free slot. With `tasks=M` the tasks 0..M-1 that have not
joined yet count too, at clock 0, for `JOIN_GRACE` seconds from the first join: time for the master
to start them all (locality may first queue two splits on one worker), after which a task that has
still not joined (more splits than slots) holds nobody back.

The delivery guarantee. Updates are named by (task, step); a task's steps are applied in order,
each exactly once. `push` is at-least-once: on a lost connection the client reconnects and sends the
same update again. The server applies an update only when its step is the task's clock, and drops
(and counts) a step it has already applied, whoever sends it: a resend, a second attempt of the task
(a backup, or the retry of an attempt whose worker died while the first still ran). A new attempt
resumes at the server's clock for its task (`join` says which step), so the steps a dead attempt got
applied are not redone, and those it had not are done by the new one: no step is lost or applied
twice. What a step's update *is* depends on the parameters it was computed from, so a retried step
carries another value than the lost attempt would have sent; the data it covers is the same.

Every `checkpoint_every` updates the server writes its parameters, its version (updates applied),
every task's clock and the job's `about` (what the steps mean, for the job to check on resuming) to
`checkpoints/params-<version>.npz` through `open_file` (the job's staged output, so they appear with
`main`'s other files), and `close()` writes `paramserver.json`: the counters and the log of every
applied (task, step, attempt).

Resuming. A server started from a checkpoint (`read_checkpoint`: its parameters, and `version` and
`clocks` from its metadata) goes on from there: each task's next `join` answers the step after the
last one the checkpoint holds for it. Relative to the checkpoint the guarantee above holds: every
later step is applied once. Updates the earlier server applied after writing it are not in it, so
they are done again, from the checkpoint's parameters.

Every connection is one of the cluster's own (`comm`): authenticated with the cluster secret, framed
and checked as the master's. Tasks get the secret from the slot process that runs them
(`use_secret`, called by the worker).
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from typing import Callable

from . import comm, protocol, storage
from .errors import ClusterError, ParameterServerError, UsageError
from .messages import PsFinish, PsFinished, PsJoin, PsParams, PsPush, from_wire, to_wire

_secret: bytes | None = None  # the cluster secret in a task process, set by the slot that runs tasks
RECONNECT_ATTEMPTS = 20
RECONNECT_SECONDS = 0.25
JOIN_GRACE = 10.0


def use_secret(secret: bytes) -> None:
    """Called by a worker's slot process: tasks it runs connect to parameter servers with this secret."""
    global _secret
    _secret = secret


# ---------------------------------------------------------------- the server


class ParameterServer:
    """Holds named float64 arrays; applies tasks' additive updates under bounded staleness.

    `host`: the interface workers reach the driver on; `secret`: the cluster's. `open_file(name, mode)`
    writes a checkpoint or the final log (None: no files). `version` and `clocks` (task -> updates
    applied) resume from a checkpoint; `about` (JSON-ready) goes into every checkpoint.
    """

    def __init__(self, params: dict, host: str, secret: bytes, staleness: int | None = 0,
                 checkpoint_every: int = 0, open_file: Callable | None = None, tasks: int = 0,
                 version: int = 0, clocks: dict | None = None, about: dict | None = None):
        import numpy as np  # here, not at the top: a text job's processes start faster without it

        if staleness is not None and (not isinstance(staleness, int) or staleness < 0):
            raise ValueError(f"staleness must be a non-negative int or None (unbounded), not {staleness!r}")
        self.staleness = staleness
        self.checkpoint_every = checkpoint_every
        self._open = open_file
        self._params = {str(k): np.array(v, dtype=np.float64) for k, v in params.items()}
        self._version = int(version)
        self._clock: dict[int, int] = {int(t): int(c) for t, c in (clocks or {}).items()}  # task -> updates applied
        self._resumed_from = {"version": self._version, "clocks": self._clock_record()} if version else None
        self._about = about or {}
        self._connections: dict[int, int] = {}  # task -> open connections that joined as it
        self._finished: set[int] = set()
        self._applied: list[list] = []  # [task, step, attempt, version] per applied update
        self._duplicates = 0
        self._waits = 0
        self._closed = False
        self._expected = set(range(tasks))
        self._grace_until = None  # set at the first join
        self._started = time.monotonic()
        self._changed = threading.Condition()
        self._server = comm.Server(host, 0, secret, self._serve, "paramserver").start()

    @property
    def address(self) -> str:
        return self._server.address

    def pull(self) -> dict:
        """The current parameters (copies)."""
        with self._changed:
            return {k: v.copy() for k, v in self._params.items()}

    @property
    def counters(self) -> dict:
        with self._changed:
            return {"version": self._version, "applied": len(self._applied), "duplicates_dropped": self._duplicates,
                    "staleness_waits": self._waits, "tasks": len(self._clock)}

    def __enter__(self) -> "ParameterServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; write `paramserver.json` (counters, clocks and the applied log)."""
        self._server.stop()
        with self._changed:
            self._closed = True  # no task is left waiting for the bound
            self._changed.notify_all()
        if self._open is not None:
            with self._changed:
                record = {**self.counters, "staleness": self.staleness, "checkpoint_every": self.checkpoint_every,
                          "about": self._about, "resumed_from": self._resumed_from, "clocks": self._clock_record(),
                          "applied_log": ["task", "step", "attempt", "version"], "applied": self._applied}
                record["applied_count"] = len(self._applied)
            with self._open("paramserver.json", "w") as f:
                json.dump(record, f)
                f.write("\n")

    # ------------------------------------------------------------ one connection

    def _serve(self, conn: comm.Connection) -> None:
        task = None
        try:
            while True:
                msg = from_wire(conn.recv())
                try:
                    reply, task = self._handle(msg, task)
                    reply = to_wire(reply)
                except ParameterServerError as exc:
                    reply = protocol.error_reply(exc)
                conn.send(reply)
        finally:
            if task is not None:
                with self._changed:
                    self._connections[task] -= 1
                    self._changed.notify_all()  # it no longer holds anyone back

    def _handle(self, msg, task: int | None) -> tuple[PsParams | PsFinished, int | None]:
        if isinstance(msg, PsJoin):
            if task is not None:
                raise ParameterServerError("this connection has joined already")
            task = msg.task
            with self._changed:
                if self._grace_until is None:
                    self._grace_until = time.monotonic() + JOIN_GRACE
                self._clock.setdefault(task, 0)
                self._connections[task] = self._connections.get(task, 0) + 1
                self._finished.discard(task)
                self._changed.notify_all()
            return self._params_reply(task), task
        if task is None:
            raise ParameterServerError(f"{msg.type!r} before ps_join")
        if isinstance(msg, PsPush):
            self._apply(task, msg.step, msg.attempt, msg.deltas)
            return self._params_reply(task), task
        if isinstance(msg, PsFinish):
            with self._changed:
                self._finished.add(task)
                self._changed.notify_all()
            return PsFinished(self._clock[task]), task
        raise ParameterServerError(f"a parameter server does not answer {msg.type!r}")

    def _apply(self, task: int, step: int, attempt: str, deltas: dict) -> None:
        snapshot = None
        with self._changed:
            clock = self._clock[task]
            if step < clock:
                self._duplicates += 1  # applied already: a resend, or another attempt of the task
                return
            if step > clock:
                raise ParameterServerError(f"task {task} pushed step {step} but the server has applied {clock} of its "
                                           f"updates: steps must come in order (join first to learn where to resume)")
            unknown = set(deltas) - set(self._params)
            if unknown:
                raise ParameterServerError(f"no parameter named {sorted(unknown)} (the server holds {sorted(self._params)})")
            for name, delta in deltas.items():
                self._params[name] += delta
            self._clock[task] = clock + 1
            self._version += 1
            self._applied.append([task, step, attempt, self._version])
            if self.checkpoint_every and self._version % self.checkpoint_every == 0:
                snapshot = self._snapshot()
            self._changed.notify_all()
        if snapshot is not None and self._open is not None:
            self._write_checkpoint(*snapshot)

    def _params_reply(self, task: int) -> PsParams:
        """Wait until `task` is within the staleness bound of the slowest participant, then answer."""
        with self._changed:
            began = time.monotonic()
            if self.staleness is not None and not self._within_bound(task):
                self._waits += 1
                while not self._within_bound(task):
                    self._changed.wait(0.5)  # the join grace ends without a notification
            return PsParams(self._clock[task], self._version, time.monotonic() - began,
                            {k: v.copy() for k, v in self._params.items()})

    def _clock_record(self) -> dict:
        return {str(t): c for t, c in sorted(self._clock.items())}

    def _within_bound(self, task: int) -> bool:
        participants = [c for t, c in self._clock.items() if self._connections.get(t) and t not in self._finished]
        if self._grace_until is not None and time.monotonic() < self._grace_until:  # those not joined yet, too
            participants += [self._clock.get(t, 0) for t in self._expected if t not in self._connections]
        return self._closed or not participants or self._clock[task] - min(participants) <= self.staleness

    def _snapshot(self) -> tuple:
        return (self._version, time.monotonic() - self._started, {k: v.copy() for k, v in self._params.items()},
                self._clock_record())

    def _write_checkpoint(self, version: int, seconds: float, params: dict, clocks: dict) -> None:
        import numpy as np

        buf = io.BytesIO()
        meta = json.dumps({"version": version, "seconds": seconds, "clocks": clocks, "about": self._about})
        np.savez(buf, **params, _meta=np.array(meta))
        with self._open(f"checkpoints/params-{version:08d}.npz", "wb") as f:
            f.write(buf.getvalue())


def start_for_runner(run_step, params: dict, open_file: Callable, **settings) -> ParameterServer:
    """A server for a `main(ctx)` session whose rounds run through `run_step`, on the interface and with
    the secret of that runner's cluster (`endpoint_for_runner`)."""
    host, secret = endpoint_for_runner(run_step)
    return ParameterServer(params, host, secret, open_file=open_file, **settings)


def endpoint_for_runner(run_step) -> tuple[str, bytes]:
    """(host, secret) for a parameter server of the session whose rounds run through `run_step`; a runner
    without them (Spark, the in-process test runner) is refused in one paragraph."""
    runner = run_step.__self__  # the runner.Runner whose bound run_step the session drives
    endpoint = runner.param_server_endpoint()
    if endpoint is None:
        raise UsageError(f"a parameter server (ctx.parameter_server, sgd.py's mode=async) runs only on mrengine's own "
                         f"cluster, not on the {runner.runner_name}: its tasks reach the server over the cluster's "
                         f"authenticated connections, with the secret every mrengine worker holds, and this runner's "
                         f"task processes hold no such secret and no connection back to the driver. Run without "
                         f"--runner spark (an embedded cluster, or --master HOST:PORT), or train in gradient or "
                         f"average mode there")
    return endpoint


def read_checkpoint(url: str, storage_options: dict | None = None) -> tuple[dict, dict]:
    """A checkpoint's parameters and its metadata: `version`, `seconds` since its server started,
    `clocks` (task -> updates applied, keys as str), `about`. `url`: a path or any fsspec URL, read
    with `storage_options` as the job's inputs are."""
    import numpy as np

    fs, path = storage.filesystem(url, storage_options)
    try:
        with fs.open(path, "rb") as f, np.load(io.BytesIO(f.read())) as z:
            meta = json.loads(str(z["_meta"]))
            return {k: z[k] for k in z.files if k != "_meta"}, {"about": {}, **meta}
    except (OSError, ValueError, KeyError, EOFError) as exc:  # missing, unreadable, or not a checkpoint
        raise UsageError(f"cannot resume from {url}: {exc.__class__.__name__}: {exc}. A checkpoint is a "
                         f"checkpoints/params-<version>.npz file that a parameter server wrote into a run's "
                         f"output directory") from None


# ---------------------------------------------------------------- the client, in a task


class ParamClient:
    """A task's connection to a parameter server, as task `task` (its split's index). Use as a context
    manager; `join`, then `push` one step at a time, then `finish`."""

    def __init__(self, address: str, task: int, secret: bytes | None = None):
        self.address, self.task = address, int(task)
        self.attempt = uuid.uuid4().hex[:12]  # this attempt's name in the server's log
        self._secret = _secret if secret is None else secret
        if self._secret is None:
            raise ParameterServerError("no cluster secret in this process: parameter servers are reached from tasks "
                                       "run by mrengine's workers")
        self._conn = None
        self.waited = 0.0  # seconds the last push waited for the staleness bound

    def __enter__(self) -> "ParamClient":
        return self

    def __exit__(self, *exc) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def join(self) -> tuple[int, dict]:
        """(the step to do next, the parameters): where this task stands on the server."""
        reply = self._request(PsJoin(self.task))
        return reply.step, reply.params

    def push(self, step: int, deltas: dict) -> tuple[int, dict]:
        """Send step `step`'s update (added to the named parameters); returns (the next step to do, the
        parameters to compute it from), once the staleness bound lets this task go on."""
        reply = self._request(PsPush(step, self.attempt, deltas))
        self.waited = reply.waited
        return reply.step, reply.params

    def finish(self) -> None:
        self._request(PsFinish())

    def _request(self, msg):
        """At least once: a lost connection is opened again (and joined again) and the request resent."""
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                if self._conn is None:
                    self._conn = comm.connect(self.address, self._secret, timeout=None)
                    if not isinstance(msg, PsJoin):
                        self._conn.request(to_wire(PsJoin(self.task)))
                return from_wire(self._conn.request(to_wire(msg)))
            except (comm.ConnectionClosed, ClusterError):
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise
                time.sleep(RECONNECT_SECONDS)


def connect(address: str, task: int) -> ParamClient:
    """A task's client of the parameter server at `address` (from the round's broadcast)."""
    return ParamClient(address, task)
