"""The master: turns messages and timeouts into task events, and carries out the resulting actions.

It lists inputs and cuts splits, hands attempts to workers on their heartbeats, notices workers that
fell silent, commits one winning reduce output per partition and writes `_SUCCESS` last. It never
touches record data and never runs job code: the pickled job travels to the workers unopened.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from . import comm, outputs, protocol
from .errors import MrEngineError, ProtocolError, StorageError
from .inputs import list_inputs, make_splits
from .tasks import (
    MAP, AttemptFailed, AttemptSucceeded, Cancel, Commit, Discard, FetchFailed, JobFailed, JobSucceeded,
    JobTasks, Launch, WorkerLost, WorkerReady,
)

log = logging.getLogger("mrengine.master")

DEFAULT_WORKER_TIMEOUT = 5.0
LONG_POLL_SECONDS = 0.25
LOCALITY_WAIT_SECONDS = 3.0  # how long a map waits for the worker its submission prefers


@dataclass
class WorkerInfo:
    id: str
    host: str
    shuffle: str
    slots: int
    last_seen: float
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
        for task in self.tasks.winners():
            for group, name, n in task.result["counters"]:
                total[(group, name)] += n
        return [[g, n, v] for (g, n), v in sorted(total.items())]


class Master:
    def __init__(self, host: str, port: int, secret: bytes, worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME):
        self.secret = secret
        self.worker_timeout = worker_timeout
        self.workers: dict[str, WorkerInfo] = {}
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Condition()
        self._ids = itertools.count(1)
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
            self.workers[worker_id] = WorkerInfo(worker_id, str(msg["host"]), str(msg["shuffle"]), int(msg["slots"]), time.monotonic())
            log.info("worker %s joined from %s (%d slots)", worker_id, msg["shuffle"], msg["slots"])
            self.lock.notify_all()
        return {"type": "registered", "worker_id": worker_id}

    def _goodbye(self, msg: dict) -> dict:
        with self.lock:
            worker = self.workers.get(msg["worker_id"])
            if worker is not None and worker.alive:
                log.info("worker %s left", worker.id)
                self._lose(worker)
        return {"type": "ok"}

    def _heartbeat(self, msg: dict) -> dict:
        deadline = time.monotonic() + LONG_POLL_SECONDS
        with self.lock:
            worker = self.workers.get(msg["worker_id"])
            if worker is None or not worker.alive:
                return {"type": "reregister", "reregister": True}
            worker.last_seen = time.monotonic()
            worker.running = list(msg["running"])
            for report in msg["finished"]:
                self._finished(worker, report)
            free = int(msg["free_slots"])
            assign = self._assign(worker, free)
            polled = False
            while free and not assign and not msg["finished"] and time.monotonic() < deadline and not self._stopped.is_set():
                self.lock.wait(max(deadline - time.monotonic(), 0))
                polled = True
                if not worker.alive:
                    return {"type": "reregister", "reregister": True}
                assign = self._assign(worker, free)
            worker.last_seen = time.monotonic()
            reply = {"type": "work", "assign": assign, "cancel": worker.cancels, "forget": worker.forget, "polled": polled}
            worker.cancels, worker.forget = [], []
            return reply

    def _assign(self, worker: WorkerInfo, free: int) -> list:
        assigned: list = []
        live = frozenset(w.id for w in self.workers.values() if w.alive)
        for job in [j for j in self.jobs.values() if j.state == "running"]:
            while len(assigned) < free:
                actions = job.tasks.handle(WorkerReady(worker.id, time.monotonic(), live))
                if not actions:
                    break
                for action in actions:
                    assigned.append(self._task_message(job, action.attempt))
        return assigned

    def _task_message(self, job: Job, attempt) -> dict:
        sub = job.sub
        msg = {
            "job_id": job.id, "attempt_id": attempt.id, "kind": attempt.kind, "index": attempt.index,
            "job_bytes": sub["job_bytes"], "step": sub["step"], "params": sub["params"],
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
            event = AttemptSucceeded(report["attempt_id"], report["result"])
        elif report.get("fetch_failed") is not None and report["fetch_failed"] >= 0:
            event = FetchFailed(report["attempt_id"], report["fetch_failed"])
            log.warning("job %s: %s", job.id, report["error"]["message"])
        else:
            event = AttemptFailed(report["attempt_id"], report["error"])
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
                now = time.monotonic()
                for worker in self.workers.values():
                    if worker.alive and now - worker.last_seen > self.worker_timeout:
                        log.warning("worker %s missed heartbeats for %.1fs: declared dead", worker.id, now - worker.last_seen)
                        self._lose(worker)

    # ------------------------------------------------------------ actions

    def _carry_out(self, job: Job, actions: list) -> None:
        sub = job.sub
        for action in actions:
            if isinstance(action, Cancel):
                worker = self.workers.get(action.attempt.worker)
                if worker is not None and worker.alive:
                    worker.cancels.append(action.attempt.id)
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
                task = action.task
                self._fail(job, {
                    "message": f"{task.name}{self._where(job, task)} failed on all {task.failures} attempts; "
                               f"the last error: {action.error['message']}",
                    "traceback": action.error.get("traceback", ""),
                })

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
        job.manifest = {"job": sub["job_name"], "step": sub["step"], "parts": parts, "maps": counts["maps"],
                        "reduces": counts["reduces"], "counters": job.counters(), "format": sub["output_format"]}
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
        self.lock.notify_all()

    # ------------------------------------------------------------ drivers

    def _submit(self, msg: dict) -> dict:
        sub = {k: msg[k] for k in ("job_bytes", "job_name", "step", "inputs", "input_format", "splittable", "output",
                                   "output_format", "num_reducers", "split_size", "params", "storage_options",
                                   "sort_buffer_bytes", "max_attempts")}
        files = list_inputs(sub["inputs"], sub["storage_options"])
        splits = make_splits(files, sub["split_size"], sub["splittable"])
        # Optional: [url, start, end, worker] of splits that should run on that worker (its cache).
        prefer = {(url, start, end): worker for url, start, end, worker in msg.get("prefer") or ()}
        preferred = [prefer.get((s.url, s.start, s.end)) for s in splits]
        with self.lock:
            job_id = f"job{next(self._ids):04d}"
            tasks = JobTasks(len(splits), sub["num_reducers"], sub["max_attempts"], preferred, LOCALITY_WAIT_SECONDS)
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
            workers = [{"id": w.id, "host": w.host, "shuffle": w.shuffle, "slots": w.slots, "alive": w.alive,
                        "running": w.running, "last_seen": round(now - w.last_seen, 2)} for w in self.workers.values()]
            jobs = [{"id": j.id, "name": j.sub["job_name"], "step": j.sub["step"], "state": j.state,
                     "counts": j.tasks.counts(), "elapsed": round((j.finished or now) - j.started, 2)} for j in self.jobs.values()]
        return {"type": "status", "workers": workers, "jobs": jobs}


def main(host: str, port: int, secret: bytes, worker_timeout: float, ready_file: str | None) -> None:
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s master %(levelname)s %(message)s", stream=sys.stderr)
    master = Master(host, port, secret, worker_timeout).start()
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
