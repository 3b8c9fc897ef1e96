"""The master: turns messages and timeouts into task events, and carries out the resulting actions.

It lists inputs and cuts splits, hands attempts to workers on their heartbeats, notices workers that
fell silent, commits one winning reduce output per partition and writes `_SUCCESS` last. It never
touches record data and never runs job code: the pickled job travels to the workers unopened.

A heartbeat says which attempts the worker is running; one the master launched there but the worker
does not mention was lost on the way (a reply cut off with its connection) and runs again elsewhere.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from . import comm, outputs, protocol
from .errors import MrEngineError, ProtocolError, RecordError, StorageError
from .inputs import list_inputs, make_splits
from .sorting import reduce_tasks
from .tasks import (
    DEFAULT_BACKUP_AFTER, MAP, AttemptFailed, AttemptState, AttemptLost, AttemptSucceeded, Cancel, Commit, Discard, FetchFailed,
    JobFailed, JobSucceeded, JobTasks, WorkerLost, WorkerReady,
)

log = logging.getLogger("mrengine.master")

DEFAULT_WORKER_TIMEOUT = 5.0
LONG_POLL_SECONDS = 0.25
KEEP_FINISHED_JOBS = 100  # finished jobs the master remembers, for `mrengine status`
LOCALITY_WAIT_SECONDS = 3.0  # how long a map waits for the worker its submission prefers


@dataclass
class WorkerInfo:
    id: str
    host: str
    shuffle: str
    slots: int
    last_seen: float
    pid: int = 0
    alive: bool = True
    running: list = field(default_factory=list)
    cancels: list = field(default_factory=list)
    forget: list = field(default_factory=list)


@dataclass
class Job:
    id: str
    sub: dict  # the submission: job bytes, step, output, formats, params, options
    splits: list
    tasks: JobTasks
    started: float
    state: str = "running"
    finished: float = 0.0
    error: dict | None = None
    committed: list = field(default_factory=list)
    manifest: dict | None = None

    def counters(self) -> list:
        total: Counter = Counter()
        for task in self.tasks.counted():
            for group, name, n in task.result["counters"]:
                total[(group, name)] += n
        return [[g, n, v] for (g, n), v in sorted(total.items())]


class Master:
    def __init__(self, host: str, port: int, secret: bytes, worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME, backup_after: float = DEFAULT_BACKUP_AFTER):
        self.secret = secret
        self.worker_timeout = worker_timeout
        self.backup_after = backup_after
        self.workers: dict[str, WorkerInfo] = {}
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Condition()
        self._ids = itertools.count(1)
        self.instance = secrets.token_hex(8)  # worker ids mean something only to the master that gave them
        self._stopped = threading.Event()
        self.server = comm.Server(host, port, secret, self._serve, "master", max_frame)

    @property
    def address(self) -> str:
        return self.server.address

    def start(self) -> "Master":
        self.server.start()
        threading.Thread(target=self._monitor, name="master-monitor", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.server.stop()

    # ------------------------------------------------------------ connections

    def _serve(self, conn: comm.Connection) -> None:
        handlers = {
            "register": self._register, "heartbeat": self._heartbeat, "goodbye": self._goodbye,
            "submit": self._submit, "job_status": self._job_status, "status": self._status,
        }
        while True:
            msg = conn.recv()
            handler = handlers.get(msg["type"])
            if handler is None:
                raise ProtocolError(f"unknown message type {msg['type']!r}")
            try:
                reply = handler(msg)
            except MrEngineError as exc:
                reply = protocol.error_reply(exc)
            except (KeyError, TypeError, ValueError) as exc:
                raise ProtocolError(f"malformed {msg['type']!r} message: {exc!r}") from None
            conn.send(reply)

    # ------------------------------------------------------------ workers

    def _register(self, msg: dict) -> dict:
        with self.lock:
            worker_id = f"w{next(self._ids)}"
            previous = self._worker_of({**msg, "worker_id": str(msg.get("previous") or "")})
            if previous is not None:
                log.warning("worker %s registers again as %s: its attempts and map outputs are dropped", previous.id, worker_id)
                self._lose(previous)
            self.workers[worker_id] = WorkerInfo(worker_id, str(msg["host"]), str(msg["shuffle"]), int(msg["slots"]),
                                                 time.monotonic(), int(msg.get("pid") or 0))
            log.info("worker %s joined from %s (%d slots)", worker_id, msg["shuffle"], msg["slots"])
            self.lock.notify_all()
        return {"type": "registered", "worker_id": worker_id, "worker_timeout": self.worker_timeout, "master": self.instance}

    def _goodbye(self, msg: dict) -> dict:
        with self.lock:
            worker = self._worker_of(msg)
            if worker is not None:
                log.info("worker %s left", worker.id)
                self._lose(worker)
        return {"type": "ok"}

    def _worker_of(self, msg: dict) -> WorkerInfo | None:
        """The live worker sending `msg`; None for one this master does not know (or no longer trusts)."""
        worker = self.workers.get(msg["worker_id"]) if msg.get("master") == self.instance else None
        return worker if worker is not None and worker.alive else None

    def _heartbeat(self, msg: dict) -> dict:
        deadline = time.monotonic() + LONG_POLL_SECONDS
        worker = self._worker_of(msg)
        if worker is not None:
            worker.last_seen = time.monotonic()  # before the lock: a busy master must not time workers out
        with self.lock:
            if worker is None or not worker.alive:  # (it may have died while we waited for the lock)
                return {"type": "reregister", "reregister": True}
            worker.running = [(str(job_id), str(attempt_id)) for job_id, attempt_id in msg["running"]]
            for report in msg["finished"]:
                self._finished(worker, report)
            self._reconcile(worker, {(r["job_id"], r["attempt_id"]) for r in msg["finished"]})
            free = int(msg["free_slots"])
            assign = self._assign(worker, free)
            polled = False
            while free and not assign and not msg["finished"] and time.monotonic() < deadline and not self._stopped.is_set():
                self.lock.wait(max(deadline - time.monotonic(), 0))
                polled = True
                if not worker.alive:
                    return {"type": "reregister", "reregister": True}
                assign = self._assign(worker, free)
            # A job's pickled code (with a round's broadcast) goes to a worker once, not with every task:
            # the heartbeat says which jobs the worker holds.
            held = set(msg.get("jobs") or ())
            jobs = {t["job_id"]: self.jobs[t["job_id"]].sub["job_bytes"] for t in assign if t["job_id"] not in held}
            reply = {"type": "work", "assign": assign, "jobs": jobs, "cancel": worker.cancels, "forget": worker.forget,
                     "polled": polled}
            worker.last_seen = time.monotonic()
            worker.cancels, worker.forget = [], []
            return reply

    def _reconcile(self, worker: WorkerInfo, finished: set) -> None:
        """Attempts launched on `worker` that it neither runs nor reports finished never reached it."""
        reported = set(worker.running) | finished
        for job in [j for j in self.jobs.values() if j.state == "running"]:
            for attempt in job.tasks.running_on(worker.id):
                if (job.id, attempt.id) not in reported:
                    log.warning("job %s: attempt %s never reached %s; launching it again", job.id, attempt.id, worker.id)
                    self._carry_out(job, job.tasks.handle(AttemptLost(attempt.id)))

    def _assign(self, worker: WorkerInfo, free: int) -> list:
        assigned: list = []
        live = frozenset(w.id for w in self.workers.values() if w.alive)
        for job in [j for j in self.jobs.values() if j.state == "running"]:
            while len(assigned) < free:
                now = time.monotonic()
                actions = job.tasks.handle(WorkerReady(worker.id, now, live))
                if not actions:
                    break
                for action in actions:
                    attempt = action.attempt
                    if attempt.backup:
                        first = job.tasks.task_of(attempt).running()[0]
                        log.info("job %s: %s on %s has run %.1fs; backup attempt %s on %s", job.id, first.id,
                                 first.worker, now - first.started, attempt.id, worker.id)
                    assigned.append(self._task_message(job, attempt))
        return assigned

    def _task_message(self, job: Job, attempt) -> dict:
        sub = job.sub
        msg = {
            "job_id": job.id, "attempt_id": attempt.id, "kind": attempt.kind, "index": attempt.index,
            "step": sub["step"], "params": sub["params"],
            "storage_options": sub["storage_options"], "num_partitions": len(job.tasks.reduces),
        }
        if attempt.kind == MAP:
            msg.update(split=list(job.splits[attempt.index]), input_format=sub["input_format"],
                       sort_buffer_bytes=sub["sort_buffer_bytes"])
        else:
            sources = []
            for task in job.tasks.maps:
                offset, length, records = task.result["segments"][attempt.index]
                sources.append([task.index, self.workers[task.winner.worker].shuffle, task.winner.id, length, records])
            msg.update(sources=sources, output=sub["output"], output_format=sub["output_format"])
        return msg

    def _finished(self, worker: WorkerInfo, report: dict) -> None:
        job = self.jobs.get(report["job_id"])
        if job is None:
            return
        if report["ok"]:
            event = AttemptSucceeded(report["attempt_id"], report["result"], time.monotonic())
        elif report.get("fetch_failed") is not None:
            map_index, map_attempt = report["fetch_failed"]
            event = FetchFailed(report["attempt_id"], int(map_index), str(map_attempt), report["error"])
            log.warning("job %s: reduce attempt %s on %s could not fetch its input; the map outputs of the worker "
                        "it fetched from will be made again: %s", job.id, report["attempt_id"], worker.id,
                        report["error"]["message"])
        else:
            event = AttemptFailed(report["attempt_id"], report["error"], bool(report["error"].get("final")))
            log.warning("job %s: attempt %s failed on %s: %s", job.id, report["attempt_id"], worker.id,
                        report["error"]["message"].splitlines()[0])
        self._carry_out(job, job.tasks.handle(event))
        self.lock.notify_all()

    def _lose(self, worker: WorkerInfo) -> None:
        worker.alive = False
        for job in self.jobs.values():
            if job.state == "running":
                self._carry_out(job, job.tasks.handle(WorkerLost(worker.id)))
        self.lock.notify_all()

    def _monitor(self) -> None:
        while not self._stopped.wait(min(0.25, self.worker_timeout / 4)):
            with self.lock:
                for worker in list(self.workers.values()):
                    silent = time.monotonic() - worker.last_seen
                    if worker.alive and silent > self.worker_timeout:
                        log.warning("worker %s (%s) silent for %.1fs: declared dead; its running attempts and the map "
                                    "outputs still needed will be made again", worker.id, worker.shuffle, silent)
                        self._lose(worker)

    # ------------------------------------------------------------ actions

    def _carry_out(self, job: Job, actions: list) -> None:
        sub = job.sub
        for action in actions:
            if isinstance(action, Cancel):
                # The worker kills the attempt and then removes what it wrote; removing it here too
                # covers a worker that never comes back.
                worker = self.workers.get(action.attempt.worker)
                if worker is not None and worker.alive:
                    worker.cancels.append([job.id, action.attempt.id])
                if action.attempt.kind != MAP:
                    self._discard(job, action.attempt)
            elif isinstance(action, Discard):
                self._discard(job, action.attempt)
            elif isinstance(action, Commit):
                try:
                    outputs.commit_task(sub["output"], job.id, action.attempt.id, action.attempt.index, sub["storage_options"])
                    job.committed.append(action.attempt.index)
                except Exception as exc:
                    self._fail(job, {"message": f"committing reduce task {action.attempt.index} failed: {exc}", "traceback": ""})
                    return
            elif isinstance(action, JobSucceeded):
                self._succeed(job)
            elif isinstance(action, JobFailed):
                self._fail(job, self._job_error(job, action))

    def _job_error(self, job: Job, action: JobFailed) -> dict:
        """The error a failed job reports: which task failed, where, how often, and its last error."""
        task, error = action.task, action.error
        name = f"{task.name}{self._where(job, task)}"
        if error.get("final"):
            return {**error, "message": RecordError.not_retried(name, error["message"]).message}
        if task.failures >= job.tasks.max_attempts:
            workers = sorted({a.worker for a in task.attempts if a.state is AttemptState.FAILED})
            what = (f"failed on all {task.failures} attempts (on worker{'s' * (len(workers) > 1)} "
                    f"{', '.join(workers)}); the last error: {error['message']}")
        else:
            what = error["message"]
        return {"message": f"{name} {what}", "traceback": error.get("traceback", "")}

    def _where(self, job: Job, task) -> str:
        return f" (split {job.splits[task.index].describe()})" if task.kind == MAP else ""

    def _discard(self, job: Job, attempt) -> None:
        try:
            outputs.discard_attempt(job.sub["output"], job.id, attempt.id, job.sub["storage_options"])
        except Exception as exc:
            log.warning("job %s: could not remove attempt %s output: %s", job.id, attempt.id, exc)

    def _succeed(self, job: Job) -> None:
        sub = job.sub
        parts = {outputs.part_name(t.index): {k: t.result[k] for k in ("bytes", "records", "crc32")} for t in job.tasks.reduces}
        counts = job.tasks.counts()
        job.manifest = outputs.manifest(sub, parts, counts["maps"], job.counters())
        try:
            outputs.commit_job(sub["output"], job.id, job.manifest, sub["storage_options"])
        except Exception as exc:
            self._fail(job, {"message": f"writing {outputs.SUCCESS} failed: {exc}", "traceback": ""})
            return
        self._end(job, "succeeded")

    def _fail(self, job: Job, error: dict) -> None:
        job.error = error
        job.tasks.done = True
        try:
            outputs.abort_job(job.sub["output"], job.id, job.committed, job.sub["storage_options"])
        except Exception as exc:
            log.warning("job %s: could not clean up its output: %s", job.id, exc)
        self._end(job, "failed")

    def _end(self, job: Job, state: str) -> None:
        job.state, job.finished = state, time.monotonic()
        log.info("job %s %s in %.2fs", job.id, state, job.finished - job.started)
        for worker in self.workers.values():
            if worker.alive:
                worker.forget.append(job.id)
        finished = [j.id for j in self.jobs.values() if j.state != "running"]
        for job_id in finished[:-KEEP_FINISHED_JOBS]:
            del self.jobs[job_id]
        self.lock.notify_all()

    # ------------------------------------------------------------ drivers

    def _submit(self, msg: dict) -> dict:
        sub = {k: msg[k] for k in ("job_bytes", "job_name", "step", "inputs", "input_format", "splittable", "output",
                                   "output_format", "num_reducers", "split_size", "params", "storage_options",
                                   "sort_buffer_bytes", "max_attempts")}
        files = list_inputs(sub["inputs"], sub["storage_options"])
        splits = make_splits(files, sub["split_size"], sub["splittable"])
        sub["num_reducers"] = reduce_tasks(sub["num_reducers"], len(splits))  # a map-only step: one writer per map
        # Optional: [url, start, end, worker] of splits that should run on that worker (its cache).
        prefer = {(url, start, end): worker for url, start, end, worker in msg.get("prefer") or ()}
        preferred = [prefer.get((s.url, s.start, s.end)) for s in splits]
        with self.lock:
            job_id = f"job{next(self._ids):04d}"
            tasks = JobTasks(len(splits), sub["num_reducers"], sub["max_attempts"], preferred, LOCALITY_WAIT_SECONDS,
                             self.backup_after)
            job = self.jobs[job_id] = Job(job_id, sub, splits, tasks, time.monotonic())
            log.info("job %s (%s step %d): %d map tasks, %d reduce tasks", job_id, sub["job_name"], sub["step"],
                     len(splits), sub["num_reducers"])
            if not splits and not sub["num_reducers"]:
                self._succeed(job)
            self.lock.notify_all()
        return {"type": "submitted", "job_id": job_id, "maps": len(splits), "reduces": sub["num_reducers"]}

    def _job_status(self, msg: dict) -> dict:
        with self.lock:
            job = self.jobs.get(msg["job_id"])
            if job is None:
                raise StorageError(f"no job {msg['job_id']!r} on this master")
            end = job.finished if job.state != "running" else time.monotonic()
            # Where each split's map ran, for a driver whose next job reads the same splits (see `prefer`).
            map_workers = [[s.url, s.start, s.end, t.winner.worker] for s, t in zip(job.splits, job.tasks.maps)
                           if t.winner] if job.state == "succeeded" else []
            return {"type": "job_status", "state": job.state, "counts": job.tasks.counts(), "counters": job.counters(),
                    "elapsed": end - job.started, "error": job.error, "manifest": job.manifest,
                    "workers": sum(w.alive for w in self.workers.values()), "map_workers": map_workers}

    def _status(self, msg: dict) -> dict:
        with self.lock:
            now = time.monotonic()
            workers = [{"id": w.id, "host": w.host, "pid": w.pid, "shuffle": w.shuffle, "slots": w.slots, "alive": w.alive,
                        "running": [list(r) for r in w.running], "last_seen": round(now - w.last_seen, 2)}
                       for w in self.workers.values()]
            jobs = [{"id": j.id, "name": j.sub["job_name"], "step": j.sub["step"], "state": j.state,
                     "counts": j.tasks.counts(), "elapsed": round((j.finished or now) - j.started, 2),
                     "error": j.error and j.error["message"],
                     "tasks": self._task_rows(j, now) if j.state == "running" or msg.get("tasks") else None}
                    for j in self.jobs.values()]
        return {"type": "status", "workers": workers, "jobs": jobs}

    @staticmethod
    def _task_rows(job: Job, now: float) -> list:
        def seconds(a) -> float | None:  # how long it has run, or took to succeed
            end = now if a.state is AttemptState.RUNNING else a.finished
            return round(end - a.started, 2) if end else None

        return [{"kind": t.kind, "index": t.index, "state": t.state.value, "failures": t.failures,
                 "attempts": [{"id": a.id, "worker": a.worker, "state": a.state.value, "backup": a.backup,
                               "seconds": seconds(a)} for a in t.attempts]}
                for t in job.tasks.maps + job.tasks.reduces]


def main(host: str, port: int, secret: bytes, worker_timeout: float, ready_file: str | None,
         backup_after: float = DEFAULT_BACKUP_AFTER) -> None:
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s master %(levelname)s %(message)s", stream=sys.stderr)
    master = Master(host, port, secret, worker_timeout, backup_after=backup_after).start()
    log.info("listening on %s", master.address)
    if ready_file:
        tmp = ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(master.address)
        os.replace(tmp, ready_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    log.info("stopping")
    master.stop()
