"""A worker: registers with the master, runs attempts in slot processes, serves its map outputs.

The worker process itself only talks: one heartbeat loop to the master (which carries finished
attempts up and new assignments, cancellations and clean-ups down) and a shuffle server answering
reducers' fetches. Attempts run in long-lived slot processes, one attempt at a time each, so user
code gets its own core and a cancelled or stuck attempt is ended by killing its process.

Shutdown is two-stage: the first SIGTERM/SIGINT stops taking work and lets running attempts finish;
the second kills them. Slot processes ignore SIGINT (a Ctrl-C reaches the whole process group) and
die with their worker (PR_SET_PDEATHSIG), so no process outlives a killed worker.
"""

from __future__ import annotations

import linecache
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

import cloudpickle

from . import comm
from .errors import ClusterError, FetchFailedError, MrEngineError, ProtocolError
from .procutil import die_with_parent
from .executor import UserCodeError, run_map, run_reduce
from .tasks import MAP

log = logging.getLogger("mrengine.worker")

HEARTBEAT_SECONDS = 0.5
MASTER_RETRY_SECONDS = 10.0


# ---------------------------------------------------------------- slot processes


def _prime_linecache(path: str, source: str) -> None:
    # Tracebacks show the user's source lines even on hosts without the job file.
    if not os.path.exists(path):
        linecache.cache[path] = (len(source), None, source.splitlines(True), path)


def slot_main(conn, secret: bytes, work_dir: str) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    jobs: dict = {}
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_run_attempt(task, jobs, secret, work_dir))


def _run_attempt(task: dict, jobs: dict, secret: bytes, work_dir: str) -> dict:
    reply = {"attempt_id": task["attempt_id"], "job_id": task["job_id"]}
    try:
        job = jobs.get(task["job_id"])
        if job is None:
            job = jobs[task["job_id"]] = cloudpickle.loads(task["job_bytes"])
            _prime_linecache(job.path, job.source)
        step = job.steps[task["step"]]
        if task["kind"] == MAP:
            result = run_map(job, step, task, work_dir)
        else:
            result = run_reduce(job, step, task, work_dir, secret)
        return {**reply, "ok": True, "result": result}
    except FetchFailedError as exc:
        return {**reply, "ok": False, "fetch_failed": exc.map_index, "error": {"message": str(exc), "traceback": ""}}
    except UserCodeError as exc:
        return {**reply, "ok": False, "error": {"message": exc.args[0], "traceback": exc.args[1]}}
    except MrEngineError as exc:
        return {**reply, "ok": False, "error": {"message": str(exc), "traceback": ""}}
    except Exception as exc:
        return {**reply, "ok": False, "error": {"message": f"internal error: {type(exc).__name__}: {exc}",
                                                "traceback": traceback.format_exc()}}


class Slot:
    def __init__(self, secret: bytes, work_dir: str):
        self.secret = secret
        self.work_dir = work_dir
        self.task: dict | None = None
        self._start()

    def _start(self) -> None:
        # Forked, not spawned: the worker has imported everything a slot needs, so a slot is ready at
        # once instead of after a fresh interpreter's imports (a few hundred ms, the bulk of a small
        # job's latency). The first slots are forked before any thread starts; a restarted one only
        # reads its pipe and runs attempts, never touching what the worker's threads hold.
        mp = multiprocessing.get_context("fork")
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=slot_main, args=(child, self.secret, self.work_dir), daemon=True)
        self.proc.start()
        child.close()

    def run(self, task: dict) -> None:
        self.task = task
        self.conn.send(task)

    def result(self) -> dict:
        """The finished attempt's reply (call when `conn` is readable)."""
        task, self.task = self.task, None
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.exitcode
            self.restart()
            return {"attempt_id": task["attempt_id"], "job_id": task["job_id"], "ok": False,
                    "error": {"message": f"the task process died (exit code {code}); out of memory?", "traceback": ""}}

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        self.task = None
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


# ---------------------------------------------------------------- the worker


class Worker:
    def __init__(self, master: str, secret: bytes, slots: int = 1, work_dir: str | None = None,
                 bind_host: str = "127.0.0.1"):
        self.master = master
        self.secret = secret
        self.num_slots = max(1, slots)
        self.work_dir = os.path.abspath(work_dir or os.path.join(os.getcwd(), "mrengine-work"))
        self.bind_host = bind_host
        self.outputs: dict[tuple[str, str], tuple[str, list]] = {}
        self.outputs_lock = threading.Lock()
        self.stop_requests = 0
        self.worker_id = ""

    # ------------------------------------------------------------ serving map outputs

    def _serve_fetch(self, conn: comm.Connection) -> None:
        while True:
            msg = conn.recv()
            if msg["type"] != "fetch":
                raise ProtocolError(f"unexpected {msg['type']!r} on the shuffle port")
            with self.outputs_lock:
                found = self.outputs.get((str(msg.get("job_id")), str(msg.get("attempt_id"))))
            partition = msg.get("partition")
            if found is None or type(partition) is not int or not 0 <= partition < len(found[1]):
                conn.send({"type": "error", "error": "FetchFailedError", "message": "no such map output here",
                           "args": ["no such map output here", -1]})
                continue
            path, segments = found
            offset, length, _ = segments[partition]
            try:
                with open(path, "rb") as f:
                    conn.send({"type": "segment", "length": length})
                    conn.send_file_range(f, offset, length)
            except FileNotFoundError:
                conn.send({"type": "error", "error": "FetchFailedError", "message": "map output file is gone",
                           "args": ["map output file is gone", -1]})

    def _forget(self, job_id: str | None = None) -> None:
        with self.outputs_lock:
            for key in [k for k in self.outputs if job_id is None or k[0] == job_id]:
                del self.outputs[key]
        target = self.work_dir if job_id is None else os.path.join(self.work_dir, job_id)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(self.work_dir, exist_ok=True)

    # ------------------------------------------------------------ talking to the master

    def _connect(self) -> comm.Connection:
        deadline = time.monotonic() + MASTER_RETRY_SECONDS
        while True:
            try:
                conn = comm.connect(self.master, self.secret)
                break
            except ClusterError:
                if time.monotonic() > deadline or self.stop_requests:
                    raise
                time.sleep(0.2)
        host = conn.sock.getsockname()[0]  # the address the master sees us at
        reply = conn.request({"type": "register", "host": socket.gethostname(), "slots": self.num_slots,
                              "shuffle": f"{host}:{self.shuffle.port}", "pid": os.getpid()})
        self.worker_id = reply["worker_id"]
        log.info("registered with %s as %s", self.master, self.worker_id)
        return conn

    def _request_stop(self, signum, frame) -> None:
        self.stop_requests += 1
        if self.stop_requests > 1:
            for slot in self.slots:
                slot.stop()
            os._exit(1)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        os.makedirs(self.work_dir, exist_ok=True)
        self.work_dir = os.path.join(self.work_dir, f"worker-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.work_dir)
        self.slots = [Slot(self.secret, self.work_dir) for _ in range(self.num_slots)]
        self.shuffle = comm.Server(self.bind_host, 0, self.secret, self._serve_fetch, "shuffle").start()
        try:
            self._loop()
        finally:
            self.shuffle.stop()
            for slot in self.slots:
                slot.stop()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _loop(self) -> None:
        conn = self._connect()
        finished: list[dict] = []
        while True:
            busy = [s for s in self.slots if s.task is not None]
            if self.stop_requests and not busy and not finished:
                try:
                    conn.request({"type": "goodbye", "worker_id": self.worker_id})
                except MrEngineError:
                    pass
                conn.close()
                return
            free = 0 if self.stop_requests else len(self.slots) - len(busy)
            msg = {"type": "heartbeat", "worker_id": self.worker_id, "free_slots": free,
                   "running": [s.task["attempt_id"] for s in busy], "finished": finished}
            try:
                reply = conn.request(msg)
            except (ProtocolError, ClusterError) as exc:
                if self.stop_requests:
                    return
                log.warning("lost the master (%s); reconnecting", exc)
                conn.close()
                conn = self._connect()
                continue  # keep `finished`: it was not delivered
            finished = []
            if reply.get("reregister"):
                log.warning("the master declared this worker dead; dropping its outputs and registering anew")
                for slot in busy:
                    slot.restart()
                self._forget()
                conn.close()
                conn = self._connect()
                continue
            self._apply(reply)
            busy = [s for s in self.slots if s.task is not None]
            if busy and not reply.get("assign"):
                ready = multiprocessing.connection.wait([s.conn for s in busy], timeout=HEARTBEAT_SECONDS)
                for slot in busy:
                    if slot.conn in ready:
                        finished.append(self._collect(slot))
            elif not busy and not reply.get("assign"):
                time.sleep(0.01 if reply.get("polled") else HEARTBEAT_SECONDS)

    def _apply(self, reply: dict) -> None:
        for attempt_id in reply.get("cancel", ()):
            for slot in self.slots:
                if slot.task is not None and slot.task["attempt_id"] == attempt_id:
                    slot.restart()
        for job_id in reply.get("forget", ()):
            self._forget(job_id)
        free = iter([s for s in self.slots if s.task is None])
        for task in reply.get("assign", ()):
            next(free).run(task)

    def _collect(self, slot: Slot) -> dict:
        task = slot.task
        reply = slot.result()
        if reply["ok"] and task["kind"] == MAP:
            result = reply["result"]
            with self.outputs_lock:
                self.outputs[(task["job_id"], task["attempt_id"])] = (result.pop("path"), result["segments"])
        return reply


def main(master: str, secret: bytes, slots: int, work_dir: str | None, bind_host: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s", stream=sys.stderr)
    Worker(master, secret, slots, work_dir, bind_host).run()
