"""A worker: registers with the master, runs attempts in slot processes, serves its map outputs.

The worker process itself only talks: one heartbeat loop to the master (which carries finished
attempts up and new assignments, cancellations and clean-ups down) and a shuffle server answering
reducers' fetches. Attempts run in slot processes, one attempt at a time each, so user code gets its
own core and a cancelled or stuck attempt is ended by killing its process; a slot process serves
one job (or main(ctx) session) only, so no job's state reaches another.

Its roles, each a class: `Slot` (one slot process), `SlotPool` (the slots, which attempt runs where,
ending attempts), `ShuffleServer` (the map outputs this worker holds, served to reducers), and
`Worker`, the heartbeat loop tying them to the master.

An attempt is ended (cancelled, or lost with this worker's registration) by killing its process; only
then is the reduce output it may have been writing removed, so nothing it wrote can outlive it. A
worker cut off from the master for longer than the master's worker timeout knows it has been declared
dead: it ends its attempts, drops its map outputs and registers anew once the master is back.

Shutdown is two-stage: the first SIGTERM/SIGINT stops taking work and lets running attempts finish;
the second kills them. Slot processes ignore SIGINT (a Ctrl-C reaches the whole process group) and
die with their worker (PR_SET_PDEATHSIG), so no process outlives a killed worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.sharedctypes  # noqa: F401  (a slot's RawValue: imported before the fork, not by each worker)
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict

from . import comm, outputs, paramserver, protocol, tasklogs
from .cache import IDLE_SECONDS, SlotCache
from .errors import ClusterError, FetchFailedError, MrEngineError, ProtocolError
from .executor import error_report, run_map, run_map_to_part, run_reduce
from .job import prime_linecache, user_traceback
from .limits import Watch, default_task_memory_mb, died_message, is_disk_full, sample_progress
from .messages import (
    AttemptReport, ErrorInfo, Fetch, FetchFailure, Goodbye, Heartbeat, MapOutput, Register, Registered, Reregister,
    SegmentHeader, SharedSources, SlotReply, SlotRequest, TaskSpec, Work, from_wire, to_wire,
)
from .messages import HEARTBEAT_SECONDS
from .procutil import die_with_parent
from .shuffle.runs import PackedSegments
from .tasks import MAP

log = logging.getLogger("mrengine.worker")

MASTER_RETRY_SECONDS = 30.0  # to reach the master at start; once registered a worker retries for ever
RECONNECT_SECONDS = 0.5
MAX_REMEMBERED_SPLITS = 100_000
MAX_HELD_JOBS = 16  # master jobs' pickled code kept for the slots; the master resends any the heartbeat does not list


# ---------------------------------------------------------------- slot processes


def slot_main(conn, secret: bytes, work_dir: str, progress) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sample_progress(progress)
    cache = SlotCache(on_load=prime_linecache)
    paramserver.use_secret(secret)  # tasks reach a session's parameter server with the cluster's secret
    while True:
        try:
            if not conn.poll(IDLE_SECONDS):
                cache.drop_splits()  # nothing to do for a while: give the memory back
                continue
            request: SlotRequest = conn.recv()
        except (EOFError, OSError):
            return
        with tasklogs.captured(request.task.log_level) as output:  # the attempt's own output, for its report
            reply = _run_attempt(request, cache, secret, work_dir)
        reply.report.log = output.text()
        reply.held = cache.job_ids()
        conn.send(reply)


def _run_attempt(request: SlotRequest, cache: SlotCache, secret: bytes, work_dir: str) -> SlotReply:
    task = request.task
    report = AttemptReport(task.job_id, task.attempt_id)
    try:
        job = cache.job(task.job_id, request.job_bytes)
        step = job.steps[task.step]
        if task.kind == MAP and task.writes_part:  # a map-only step's map
            report.part = run_map_to_part(job, step, task, cache)
        elif task.kind == MAP:
            path, report.map_output = run_map(job, step, task, work_dir, cache)
            return SlotReply(report, map_file=path)
        else:
            report.part = run_reduce(job, step, task, work_dir, secret, cache)
    except FetchFailedError as exc:
        report.fetch_failed = FetchFailure(exc.map_index, task.sources.attempt_of(exc.map_index))
        report.error = ErrorInfo(str(exc))
    except SystemExit as exc:
        report.error = ErrorInfo(f"the job's code called sys.exit({exc.code!r})", user_traceback(exc))
    except Exception as exc:
        report.error = disk_full_report(exc, work_dir) if is_disk_full(exc) else error_report(exc)
    return SlotReply(report)


def disk_full_report(exc: BaseException, work_dir: str) -> ErrorInfo:
    """A full disk is the worker's trouble, not the job's code: say which worker and where."""
    free = shutil.disk_usage(work_dir).free if os.path.isdir(work_dir) else 0
    own_disk = free < 64 * 1024 * 1024  # else the output's storage is full, which no other worker would fix
    where = (f"its work dir {work_dir} ({free // 1024} KiB free now)" if own_disk
             else "where the task writes the job's output")
    return ErrorInfo(f"worker {socket.gethostname()} (pid {os.getppid()}) ran out of disk space in {where}: {exc}; "
                     f"free space there or give the worker another --work-dir (not an error in the job's code)",
                     worker_fault=own_disk)


class Slot:
    def __init__(self, secret: bytes, work_dir: str, memory_mb: int):
        self.secret = secret
        self.work_dir = work_dir
        self.memory_mb = memory_mb  # the default limit, for jobs that set none
        self.task: TaskSpec | None = None
        self.watch: Watch | None = None
        self._start()

    def _start(self) -> None:
        # Forked, not spawned: the worker has imported everything a slot needs, so a slot is ready at
        # once instead of after a fresh interpreter's imports (a few hundred ms, the bulk of a small
        # job's latency). The first slots are forked before any thread starts; a restarted one only
        # reads its pipe and runs attempts, never touching what the worker's threads hold.
        mp = multiprocessing.get_context("fork")
        self.conn, child = mp.Pipe()
        self.progress = mp.RawValue("q", 0)  # grows while the running attempt moves (limits.sample_progress)
        self.proc = mp.Process(target=slot_main, args=(child, self.secret, self.work_dir, self.progress), daemon=True)
        self.proc.start()
        child.close()
        self.held: set[str] = set()  # the master jobs the process holds unpickled, as its last reply said
        self.scope: str | None = None  # the job (or main(ctx) session) whose code this process has run

    def run(self, task: TaskSpec, job_bytes: bytes) -> None:
        """Start `task` in the process; the job's code goes along unless the process holds the job."""
        self._isolate(task.scope)
        self.task = task
        self.watch = Watch(self.proc.pid, self.progress, task.task_timeout, task.task_memory_mb or self.memory_mb)
        self.conn.send(SlotRequest(task, None if task.job_id in self.held else job_bytes))

    def result(self) -> SlotReply:
        """The finished attempt's reply (call when `conn` is readable)."""
        task, self.task = self.task, None
        try:
            reply: SlotReply = self.conn.recv()
            self.held = set(reply.held)
            return reply
        except (EOFError, OSError):
            self.proc.join(5)  # its exit code is known only once it is reaped
            code = self.proc.exitcode
            self.restart()
            return SlotReply(AttemptReport(task.job_id, task.attempt_id, error=ErrorInfo(died_message(code))))

    def _isolate(self, scope: str) -> None:
        # User code may leave anything behind in a process (globals, monkeypatches, imported modules,
        # environment, working directory): a process serves one job, or one main(ctx) session's rounds
        # (their split cache lives in it), and a fresh fork of the worker, which never runs user code,
        # takes the next.
        if self.scope is not None and self.scope != scope:
            self.restart()
        self.scope = scope

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        self.task = None
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class SlotPool:
    """The worker's slots: which attempt runs in which, and ending attempts."""

    def __init__(self, count: int, secret: bytes, work_dir: str):
        memory_mb = default_task_memory_mb(count)
        self.slots = [Slot(secret, work_dir, memory_mb) for _ in range(count)]
        self.split_slots: dict[tuple, Slot] = {}  # (url, start, end) -> the slot that last ran it

    def busy(self) -> list[Slot]:
        return [s for s in self.slots if s.task is not None]

    def free(self) -> list[Slot]:
        return [s for s in self.slots if s.task is None]

    def start(self, tasks: list[TaskSpec], code_of) -> None:
        free = self.free()
        for task in tasks:
            slot = self._slot_for(task, free)
            free.remove(slot)
            slot.run(task, code_of(task.job_id))

    def _slot_for(self, task: TaskSpec, free: list[Slot]) -> Slot:
        # A map of a split this worker ran before goes to the same slot when it is free: that
        # process may still hold the split's parsed records (iterative jobs cache them).
        if task.kind != MAP:
            return _least_restarts(task, free)
        key = (task.split.url, task.split.start, task.split.end)
        slot = self.split_slots.get(key)
        if slot not in free:
            slot = _least_restarts(task, free)
            if len(self.split_slots) >= MAX_REMEMBERED_SPLITS:
                self.split_slots.clear()
            self.split_slots[key] = slot
        return slot

    def running(self, job_id: str, attempt_id: str) -> Slot | None:
        return next((s for s in self.busy() if (s.task.job_id, s.task.attempt_id) == (job_id, attempt_id)), None)

    def kill(self, slot: Slot) -> TaskSpec:
        """End the slot's attempt; then remove the part file it wrote, now that nothing writes it."""
        task = slot.task
        slot.restart()
        if task.writes_part:
            _discard(task)
        return task

    def enforce_limits(self) -> list[tuple[TaskSpec, AttemptReport]]:
        """Kill the attempts past their task timeout or memory limit; each is reported as a failed attempt."""
        failed = []
        for slot in self.busy():
            reason = slot.watch.breach()
            if reason is not None:
                log.warning("attempt %s of job %s %s", slot.task.attempt_id, slot.task.job_id, reason)
                task = self.kill(slot)
                failed.append((task, AttemptReport(task.job_id, task.attempt_id, error=ErrorInfo(reason))))
        return failed

    def renew_idle(self, ended: set) -> None:
        """Replace the idle processes that ran an ended job now, so the next job need not wait for it."""
        for slot in self.free():
            if slot.scope in ended:
                slot.restart()

    def wait(self, timeout: float) -> list[tuple[TaskSpec, SlotReply]]:
        """The attempts that finish within `timeout`, with their replies."""
        busy = self.busy()
        ready = multiprocessing.connection.wait([s.conn for s in busy], timeout=timeout)
        return [(slot.task, slot.result()) for slot in busy if slot.conn in ready]

    def stop(self) -> None:
        for slot in self.slots:
            slot.stop()


def _least_restarts(task: TaskSpec, free: list[Slot]) -> Slot:
    """A free slot that can run `task` without a new process: one of its job (or session), else a fresh one."""
    return (next((s for s in free if s.scope == task.scope), None) or next((s for s in free if s.scope is None), None)
            or free[0])


def _discard(task: TaskSpec) -> None:
    try:
        outputs.discard_attempt(task.output, task.job_id, task.attempt_id, task.storage_options)
    except Exception as exc:
        log.warning("could not remove the output of attempt %s: %s", task.attempt_id, exc)


# ---------------------------------------------------------------- serving map outputs


class ShuffleServer:
    """Serves the map outputs this worker holds to reducers, one segment per fetch."""

    def __init__(self, bind_host: str, secret: bytes, work_dir: str):
        self.work_dir = work_dir
        self.outputs: dict[tuple[str, str], tuple[str, PackedSegments]] = {}  # (job, attempt) -> (file, segments)
        self.lock = threading.Lock()
        self.server = comm.Server(bind_host, 0, secret, self._serve, "shuffle").start()

    @property
    def port(self) -> int:
        return self.server.port

    def add(self, job_id: str, attempt_id: str, path: str, output: MapOutput) -> None:
        segments = PackedSegments(output.segments())
        with self.lock:
            self.outputs[(job_id, attempt_id)] = (path, segments)

    def forget(self, job_id: str | None = None) -> None:
        """Drop a master job's outputs (all of them: None), files included."""
        with self.lock:
            for key in [k for k in self.outputs if job_id is None or k[0] == job_id]:
                del self.outputs[key]
        target = self.work_dir if job_id is None else os.path.join(self.work_dir, job_id)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(self.work_dir, exist_ok=True)

    def stop(self) -> None:
        self.server.stop()

    def _serve(self, conn: comm.Connection) -> None:
        while True:
            msg = from_wire(conn.recv())
            if not isinstance(msg, Fetch):
                raise ProtocolError(f"unexpected {msg.type!r} on the shuffle port")
            with self.lock:
                found = self.outputs.get((str(msg.job_id), str(msg.attempt_id)))
            partition = msg.partition
            if found is None or type(partition) is not int or not 0 <= partition < len(found[1]):
                conn.send(protocol.error_reply(FetchFailedError("no such map output here", -1)))
                continue
            path, segments = found
            segment = segments[partition]
            try:
                with open(path, "rb") as f:
                    conn.send(to_wire(SegmentHeader(segment.length, segment.records)))
                    conn.send_file_range(f, segment.offset, segment.length)
            except FileNotFoundError:
                conn.send(protocol.error_reply(FetchFailedError("map output file is gone", -1)))


# ---------------------------------------------------------------- the worker


class HeldSources:
    """The map source columns a worker holds for its reduces, per master job the newest generation the master
    sent (`SharedSources`), from which each reduce's spec gets its full `MapSources` before it starts.
    A reduce whose spec names a generation not held (or rows it does not have) gets none, and must not
    run: with other columns it could fetch a map attempt's output that is no longer the winner."""

    def __init__(self):
        self.by_job: dict[str, SharedSources] = {}

    def generations(self) -> dict[str, int]:
        """What the heartbeat says it holds: master job -> generation."""
        return {job_id: shared.generation for job_id, shared in self.by_job.items()}

    def update(self, sent: dict[str, SharedSources]) -> None:
        self.by_job.update(sent)

    def forget(self, job_id: str | None = None) -> None:
        if job_id is None:
            self.by_job.clear()
        else:
            self.by_job.pop(job_id, None)

    def resolve(self, task: TaskSpec) -> bool:
        """Give a reduce `task` its `sources` from its `sources_ref` (a map has none); False if they cannot be made."""
        ref = task.sources_ref
        if ref is None:
            return True
        shared = self.by_job.get(task.job_id)
        if shared is None or shared.generation != ref.generation:
            held = "none" if shared is None else f"generation {shared.generation}"
            log.warning("not starting %s of job %s: it fetches from generation %d of its map sources, and this worker "
                        "holds %s; the master will launch it again", task.attempt_id, task.job_id, ref.generation, held)
            return False
        try:
            task.sources = shared.for_reduce(ref.fetch)
        except ValueError as exc:
            log.warning("not starting %s of job %s: its rows to fetch do not fit its map sources (%s); the master "
                        "will launch it again", task.attempt_id, task.job_id, exc)
            return False
        return True


class Worker:
    """The heartbeat loop: reports finished attempts, takes assignments, cancellations and clean-ups."""

    def __init__(self, master: str, secret: bytes, slots: int = 1, work_dir: str | None = None,
                 bind_host: str = "127.0.0.1"):
        self.master = master
        self.secret = secret
        self.num_slots = max(1, slots)
        self.work_dir = os.path.abspath(work_dir or os.path.join(os.getcwd(), "mrengine-work"))
        self.bind_host = bind_host
        self.stop_requests = 0
        self.worker_id = ""  # empty until registered, and again once the master declared this worker dead
        self.previous = ""  # the registration before, if any
        self.master_instance = ""  # which master gave it
        self.worker_timeout = 0.0  # the master's, learnt on registering
        self.finished: list[tuple[TaskSpec, AttemptReport]] = []  # not yet delivered to the master
        self.jobs: OrderedDict[str, bytes] = OrderedDict()  # master job id -> its pickled code, as the master sent it
        self.sources = HeldSources()

    # ------------------------------------------------------------ ending attempts

    def _forget(self, job_id: str | None = None) -> None:
        if job_id is None:
            self.jobs.clear()
        else:
            self.jobs.pop(job_id, None)
        self.sources.forget(job_id)
        self.shuffle.forget(job_id)

    def _drop_all(self) -> None:
        """This registration is over (declared dead): end its attempts, drop its outputs, register anew."""
        for slot in self.pool.busy():
            self.pool.kill(slot)
        for task, _ in self.finished:
            if task.writes_part:
                _discard(task)
        self.finished = []
        self._forget()
        self.previous, self.worker_id = self.worker_id or self.previous, ""

    # ------------------------------------------------------------ talking to the master

    def _open(self) -> comm.Connection:
        """Connect to the master, registering first if this worker has no registration."""
        conn = comm.connect(self.master, self.secret, timeout=max(self.worker_timeout, 1.0) if self.worker_timeout else 10.0)
        if conn.encrypted:  # a cluster whose master encrypts sends its map outputs encrypted too
            self.shuffle.server.encrypt = True
        try:
            if not self.worker_id:
                host = self.bind_host
                if host in ("0.0.0.0", "::"):
                    host = conn.sock.getsockname()[0]  # the address the master sees us at
                msg = Register(socket.gethostname(), f"{host}:{self.shuffle.port}", self.num_slots, os.getpid(),
                               self.previous, self.master_instance)
                reply: Registered = from_wire(conn.request(to_wire(msg)))
                self.worker_id, self.worker_timeout = reply.worker_id, reply.worker_timeout
                self.master_instance = reply.master
                conn.settimeout(max(self.worker_timeout, 1.0))
                log.info("registered with %s as %s", self.master, self.worker_id)
        except BaseException:
            conn.close()
            raise
        return conn

    def _first_connection(self) -> comm.Connection | None:
        deadline = time.monotonic() + MASTER_RETRY_SECONDS
        pause = 0.01  # doubling to 0.2 s: a worker started with its master (the embedded cluster's) may be first
        while not self.stop_requests:
            try:
                return self._open()
            except (ClusterError, comm.ConnectionClosed) as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cannot reach the master at {self.master} within {MASTER_RETRY_SECONDS:.0f}s: {exc}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
        return None

    def _request_stop(self, signum, frame) -> None:
        self.stop_requests += 1
        if self.stop_requests > 1:
            self.pool.stop()
            shutil.rmtree(self.work_dir, ignore_errors=True)
            os._exit(1)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        os.makedirs(self.work_dir, exist_ok=True)
        self.work_dir = os.path.join(self.work_dir, f"worker-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.work_dir)
        self.pool = SlotPool(self.num_slots, self.secret, self.work_dir)
        self.shuffle = ShuffleServer(self.bind_host, self.secret, self.work_dir)
        try:
            self._loop()
        finally:
            self.shuffle.stop()
            self.pool.stop()
            shutil.rmtree(self.work_dir, ignore_errors=True)
        log.info("stopped")

    def _loop(self) -> None:
        conn = self._first_connection()
        if conn is None:
            return  # stopped before it ever registered
        heard = time.monotonic()  # when the master last answered
        announced = False
        while True:
            busy = self.pool.busy()
            if self.stop_requests and not announced:
                log.info("stopping: taking no new work, finishing %d running attempt(s); signal again to kill them", len(busy))
                announced = True
            if self.stop_requests and not busy and not self.finished and conn is not None:
                self._goodbye(conn)
                return
            try:
                if conn is None:
                    conn = self._open()
                reported = [report for _, report in self.finished]
                reply = from_wire(conn.request(to_wire(self._heartbeat(busy, reported))))
            except (ClusterError, ProtocolError) as exc:
                # Keep the finished reports: they were not delivered.
                if self.stop_requests:
                    return
                if conn is not None:
                    log.warning("lost the master (%s); reconnecting", exc)
                    conn.close()
                    conn = None
                if self.worker_id and time.monotonic() - heard > 2 * self.worker_timeout:
                    log.warning("cut off from the master for %.1fs, so declared dead there: ending this worker's "
                                "attempts and dropping its map outputs", time.monotonic() - heard)
                    self._drop_all()
                time.sleep(RECONNECT_SECONDS)
                continue
            heard = time.monotonic()
            self.finished = []
            if isinstance(reply, Reregister):
                log.warning("the master does not know this worker (it declared it dead, or restarted): dropping its "
                            "attempts and outputs and registering anew")
                self._drop_all()
                conn.close()
                conn = None
                continue
            self._apply(reply)
            if self.pool.busy() and not reply.assign:
                self._wait_busy(reply.heartbeat_seconds)
            elif not self.pool.busy() and not reply.assign:
                # Right after reporting, ask again at once (that request long-polls): the next job may be waiting.
                time.sleep(0.01 if reply.polled or reported else reply.heartbeat_seconds)

    def _wait_busy(self, interval: float) -> None:
        """Until an attempt ends, a stop is asked for, or `interval` (which the master stretches on a big
        cluster) has passed; the attempts' limits are kept every HEARTBEAT_SECONDS meanwhile."""
        until = time.monotonic() + interval
        while True:
            wait = min(HEARTBEAT_SECONDS, until - time.monotonic())
            self.finished += [self._collect(task, r) for task, r in self.pool.wait(max(wait, 0.0))]
            self.finished += self.pool.enforce_limits()
            if self.finished or self.stop_requests or not self.pool.busy() or time.monotonic() >= until:
                return

    def _heartbeat(self, busy: list[Slot], reported: list[AttemptReport]) -> Heartbeat:
        free = 0 if self.stop_requests else len(self.pool.slots) - len(busy)
        return Heartbeat(self.worker_id, self.master_instance, free, [s.task.ref for s in busy], reported,
                         list(self.jobs), self.sources.generations())

    def _goodbye(self, conn: comm.Connection) -> None:
        try:
            conn.request(to_wire(Goodbye(self.worker_id, self.master_instance)))
        except MrEngineError:
            pass
        conn.close()

    def _apply(self, reply: Work) -> None:
        ended = set(reply.forget)
        for ref in reply.cancel:
            slot = self.pool.running(ref.job_id, ref.attempt_id)
            if slot is not None:
                task = self.pool.kill(slot)
                if ref.job_id in ended and task.writes_part:
                    _remove_job_temp(task)
        for job_id in ended:
            self._forget(job_id)
        self.pool.renew_idle(ended)
        self.jobs.update(reply.jobs)
        self.sources.update(reply.sources)  # before the reduces that name them
        for task in reply.assign:
            self.jobs.move_to_end(task.job_id)
        # A reduce not started is neither running nor finished in the next heartbeat: the master launches it again.
        self.pool.start([task for task in reply.assign if self.sources.resolve(task)], self.jobs.__getitem__)
        # Jobs whose end this worker missed (the reply saying so was lost) stay until there are too many.
        in_use = {s.task.job_id for s in self.pool.busy()}
        for job_id in [j for j in self.jobs if j not in in_use][:max(len(self.jobs) - MAX_HELD_JOBS, 0)]:
            del self.jobs[job_id]
            self.sources.forget(job_id)

    def _collect(self, task: TaskSpec, reply: SlotReply) -> tuple[TaskSpec, AttemptReport]:
        report = reply.report
        if report.ok and report.map_output is not None:
            self.shuffle.add(report.job_id, report.attempt_id, reply.map_file, report.map_output)
        return task, report


def _remove_job_temp(task: TaskSpec) -> None:
    # The job is over, yet its cancelled attempt may have made the job's temporary directory again.
    try:
        outputs.remove_job_temp(task.output, task.job_id, task.storage_options)
    except Exception as exc:
        log.warning("could not remove the temporary files of job %s: %s", task.job_id, exc)


def main(master: str, secret: bytes, slots: int, work_dir: str | None, bind_host: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s", stream=sys.stderr)
    Worker(master, secret, slots, work_dir, bind_host).run()
