"""The master: turns messages and timeouts into task events, and carries out the resulting actions.

It plans each submitted step (lists inputs, cuts splits), hands attempts to workers on their
heartbeats, notices workers that fell silent, commits one winning reduce output per partition and
writes `_SUCCESS` last. It never touches record data and never runs job code: the pickled job
travels to the workers unopened.

Its roles, each a class: the `WorkerRegistry` (who is there, and alive), the `Scheduler` (master jobs'
task state machines: events in, launches and cancels out), the `Committer` (every storage call, on
its own thread, so the master's lock is never held across one: on S3 a commit is a copy with
retries), and the `Master` itself, which dispatches requests and answers status. All state lives
under one lock; task state changes only through `tasks.JobTasks.handle`.

A running master job is cancelled (`tasks.JobCancelled`) when its driver has not asked for its status
for `--driver-grace` seconds, when `mrengine kill` names it, or when a new job is submitted writing
the same output: one output, one writer. Its attempts are killed at once; the committer then undoes
its output, removing only the parts that are still the files it published.

A heartbeat says which attempts the worker is running; one the master launched there but the worker
does not mention was lost on the way (a reply cut off with its connection) and runs again elsewhere.
"""

from __future__ import annotations

import collections
import gc
import heapq
import itertools
import logging
import os
import queue
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from . import comm, fairshare, history, outputs, protocol
from .errors import ClusterError, MrEngineError, RecordError, StorageError, UsageError
from .inputs import Split
from .jobreport import AttemptNote, job_report, report_json, started, with_log_tail
from .messages import (
    HEARTBEAT_SECONDS, AttemptRef, AttemptReport, AttemptRow, ClusterStatus, ErrorInfo, FetchRows, Goodbye, Heartbeat,
    JobRow, JobStatusRequest, Kill, Logs, LogsRequest, MapOutput, Ok, Register, Registered, Reregister, SharedSources,
    SourcesRef, SplitPlaces, StatusRequest, StepSpec, StepStatus, Submit, Submitted, TaskCounts, TaskRow, TaskSpec, Work,
    WorkerRow, from_wire, to_wire,
)
from .shuffle.heavykeys import RunningTop
from .shuffle.kept import FilledRows, KeptMapOutput, PartitionTotals
from .steps import CounterSum, StepCommit, failed_on_all, manifest, plan
from .tasks import (
    DEFAULT_BACKUP_AFTER, MAP, Attempt, AttemptFailed, AttemptLost, AttemptState, AttemptSucceeded, Cancel, Commit,
    Discard, Exclude, FetchFailed, JobAborted, JobCancelled, JobFailed, JobSucceeded, JobTasks, WorkerLost, WorkerReady,
)

log = logging.getLogger("mrengine.master")

DEFAULT_WORKER_TIMEOUT = 5.0
LONG_POLL_SECONDS = 0.25  # at HEARTBEAT_SECONDS; stretched with the interval
# Routine heartbeats the master asks of its whole cluster (Hadoop's mapreduce.jobtracker.heartbeats.in.second):
# past 100 workers it stretches their interval rather than be saturated by them.
HEARTBEATS_PER_SECOND = 200
KEEP_FINISHED_JOBS = 100  # finished master jobs the master remembers, for `mrengine status`
LOCALITY_WAIT_SECONDS = 3.0  # how long a map waits for the worker its spec prefers
FREEZE_SECONDS = 5.0  # how often the GC's survivors are frozen out of its full collections (`HeapFreezer`)
DEFAULT_DRIVER_GRACE = 10.0  # a running master job whose driver has not asked for its status this long is cancelled


# ---------------------------------------------------------------- workers


@dataclass
class WorkerInfo:
    id: str
    host: str
    shuffle: str
    slots: int
    last_seen: float
    pid: int = 0
    alive: bool = True
    running: list[AttemptRef] = field(default_factory=list)
    cancels: list[AttemptRef] = field(default_factory=list)  # to send down with the next heartbeat reply
    forget: list[str] = field(default_factory=list)


class WorkerRegistry:
    """The workers that registered with this master, by the ids it gave them."""

    def __init__(self):
        self.workers: dict[str, WorkerInfo] = {}
        self._ids = itertools.count(1)
        self.instance = secrets.token_hex(8)  # worker ids mean something only to the master that gave them
        self._live_ids: frozenset | None = None  # and their slots, kept until a worker comes or goes
        self._live_slots = 0

    def add(self, msg: Register) -> WorkerInfo:
        worker = WorkerInfo(f"w{next(self._ids)}", msg.host, msg.shuffle, msg.slots, time.monotonic(), msg.pid)
        self.workers[worker.id] = worker
        self._live_ids = None
        return worker

    def drop(self, worker: WorkerInfo) -> None:
        worker.alive = False
        self._live_ids = None

    def live_ids(self) -> frozenset:
        """The ids of the live workers, built once per change (every assignment asks)."""
        if self._live_ids is None:
            alive = self.alive()
            self._live_ids, self._live_slots = frozenset(w.id for w in alive), sum(w.slots for w in alive)
        return self._live_ids

    def live_slots(self) -> int:
        self.live_ids()
        return self._live_slots

    def live(self, worker_id: str, master: str) -> WorkerInfo | None:
        """The live worker of that registration; None for one this master does not know (or no longer trusts)."""
        worker = self.workers.get(worker_id) if master == self.instance else None
        return worker if worker is not None and worker.alive else None

    def alive(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.alive]

    def silent(self, timeout: float) -> list[tuple[WorkerInfo, float]]:
        now = time.monotonic()
        return [(w, now - w.last_seen) for w in self.alive() if now - w.last_seen > timeout]

    def rows(self, now: float) -> list[WorkerRow]:
        return [WorkerRow(w.id, w.host, w.pid, w.shuffle, w.slots, w.alive, list(w.running), round(now - w.last_seen, 2))
                for w in self.workers.values()]


@dataclass(slots=True)
class LongPoll:
    """An idle worker's heartbeat that found no work, held until work appears or its deadline passes."""

    worker: WorkerInfo
    msg: Heartbeat
    request: comm.Request
    deadline: float  # as time.monotonic()
    interval: float  # the heartbeat interval its reply tells the worker


class LongPolls:
    """The parked long-polls, one per worker at most, oldest first, and their deadlines in order."""

    def __init__(self):
        self._by_worker: dict[str, LongPoll] = {}
        self._deadlines: list[tuple[float, int, LongPoll]] = []  # a heap; polls answered early are skipped
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_worker)

    def park(self, poll: LongPoll) -> None:
        self._by_worker[poll.worker.id] = poll
        heapq.heappush(self._deadlines, (poll.deadline, next(self._seq), poll))

    def pop(self, worker_id: str) -> LongPoll | None:
        return self._by_worker.pop(worker_id, None)

    def oldest_first(self) -> list[LongPoll]:
        return list(self._by_worker.values())

    def due(self, now: float) -> list[LongPoll]:
        """The polls whose deadline has passed, no longer held."""
        due = []
        while self._deadlines and self._deadlines[0][0] <= now:
            poll = heapq.heappop(self._deadlines)[2]
            if self._by_worker.get(poll.worker.id) is poll:
                del self._by_worker[poll.worker.id]
                due.append(poll)
        return due

    def next_deadline(self) -> float | None:
        while self._deadlines and self._by_worker.get(self._deadlines[0][2].worker.id) is not self._deadlines[0][2]:
            heapq.heappop(self._deadlines)  # answered before its deadline
        return self._deadlines[0][0] if self._deadlines else None


class StatusWaits:
    """Drivers' job-status requests held until their job ends or their deadline passes, whichever
    comes first: a driver learns of the end at once, without polling for it."""

    def __init__(self):
        self._by_job: dict[str, list[tuple[float, comm.Request, "MasterJob"]]] = {}

    def hold(self, request: comm.Request, job: "MasterJob", deadline: float) -> None:
        self._by_job.setdefault(job.id, []).append((deadline, request, job))

    def of_job(self, job_id: str) -> list[comm.Request]:
        """The requests held for that job, no longer held."""
        return [request for _, request, _ in self._by_job.pop(job_id, [])]

    def due(self, now: float) -> list[tuple[comm.Request, "MasterJob"]]:
        """The requests whose deadline has passed, no longer held."""
        due = []
        for job_id, held in list(self._by_job.items()):
            due += [(request, job) for deadline, request, job in held if deadline <= now]
            kept = [h for h in held if h[0] > now]
            if kept:
                self._by_job[job_id] = kept
            else:
                del self._by_job[job_id]
        return due

    def next_deadline(self) -> float | None:
        return min((h[0] for held in self._by_job.values() for h in held), default=None)


# ---------------------------------------------------------------- master jobs


@dataclass
class MasterJob:
    """One step of a job file (or one main(ctx) round) as this master runs it."""

    id: str
    spec: StepSpec
    splits: list[Split]
    tasks: JobTasks
    started: float  # monotonic
    commit: StepCommit
    started_at: float  # the same instant by the wall clock, for its reports
    state: str = "running"  # until the committer has finished or undone its output
    finished: float = 0.0
    error: ErrorInfo | None = None
    manifest: dict | None = None
    notes: dict[str, AttemptNote] = field(default_factory=dict)  # finished attempts' logs and errors, by attempt id
    driver_seen: float = 0.0  # when its driver last asked for its status
    skipped: list[dict] = field(default_factory=list)  # the bad records its winning attempts skipped, once decided
    counter_sum: CounterSum = field(default_factory=CounterSum)  # its winning attempts' counters, summed as they win
    shared_sources: tuple | None = None  # (SharedSources, FilledRows) every reduce shares, until a map's winner changes
    sources_generation: int = 0  # of the last SharedSources made
    partition_totals: PartitionTotals | None = None  # its maps' outputs' records and bytes per partition, as they win
    heavy_keys: RunningTop | None = None  # its maps' outputs' sampled heaviest keys per partition, summed as they win

    def ending(self) -> bool:
        """Whether its end is decided (failed, cancelled, or its `_SUCCESS` on the way) while it still runs."""
        return self.error is not None or self.manifest is not None

    def counters(self) -> list:
        return self.counter_sum.total()

    def replaced(self, task, before, output: MapOutput | None) -> None:
        """The result in use for `task` (its winner's) replaced `before` (None: its first); a map's is kept
        from `output`, as its worker reported it."""
        if before is not None:
            self.counter_sum.remove(before.counters)
        elif output is not None:
            if self.partition_totals is None:
                self.partition_totals = PartitionTotals(len(self.tasks.reduces))
                self.heavy_keys = RunningTop(len(self.tasks.reduces))
            self.partition_totals.add(output)
            self.heavy_keys.add(output.heavy_keys)
        self.counter_sum.add(task.result.counters)
        if task.kind == MAP:
            self.shared_sources = None

    def where(self, task) -> str:
        return f" (split {self.splits[task.index].describe()})" if task.kind == MAP else ""


# ---------------------------------------------------------------- storage calls, off the lock


class Committer:
    """Runs the master's storage calls one at a time on its own thread, in the order they were asked
    for (a job's part commits before its `_SUCCESS`), and records their outcome under the lock."""

    def __init__(self, lock: threading.Condition, on_end: Callable[[MasterJob, str], None],
                 carry_out: Callable[[MasterJob, list], None], report: Callable[[MasterJob], bytearray]):
        self.lock, self._on_end, self._carry_out, self._report = lock, on_end, carry_out, report
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="master-committer", daemon=True).start()

    def _run(self) -> None:
        while True:
            work = self._work.get()
            try:
                work()
            except Exception:
                log.exception("committer: unexpected error")

    def commit_task(self, job: MasterJob, attempt: Attempt) -> None:
        def commit() -> None:
            with self.lock:  # (a job's end is decided under the lock: done and its manifest together)
                failed = job.error is not None or (job.tasks.done and job.manifest is None)
            if failed:
                return  # the job failed meanwhile: nothing more to publish
            try:
                job.commit.task(attempt.index, attempt.id)
            except Exception as exc:
                self._abort(job, ErrorInfo(f"committing {attempt.kind} task {attempt.index} failed: {exc}"))

        self._work.put(commit)

    def commit_job(self, job: MasterJob) -> None:
        def commit() -> None:
            if job.error is not None:
                return
            try:
                with self.lock:  # a snapshot; written below, off the lock
                    report = self._report(job)
            except Exception as exc:  # a bug of ours: the job fails, saying so, rather than never ending
                log.exception("building the report of job %s", job.id)
                self._abort(job, ErrorInfo(f"internal error building the job's report: {type(exc).__name__}: {exc}"))
                return
            if job.skipped:
                try:
                    outputs.write_skipped(job.spec.job_output or job.spec.output, job.spec.step, job.skipped,
                                          job.spec.storage_options)
                except Exception as exc:
                    self._abort(job, ErrorInfo(f"writing the skipped records failed: {exc}"))
                    return
            try:
                # The job's report beside its parts, before `_SUCCESS` (which stays the last write).
                outputs.write_json(job.spec.output, history.REPORT, report, job.spec.storage_options)
            except Exception as exc:
                self._abort(job, ErrorInfo(f"writing {history.REPORT} failed: {exc}"))
                return
            del report  # megabytes of text at many tasks, and the history record is made next
            try:
                job.commit.job(job.manifest)
            except Exception as exc:
                self._abort(job, ErrorInfo(f"writing _SUCCESS failed: {exc}"))
                return
            with self.lock:
                self._on_end(job, "succeeded")

        self._work.put(commit)

    def fail_job(self, job: MasterJob, error: ErrorInfo) -> None:
        self._work.put(lambda: self._abort(job, error))

    def cancel_job(self, job: MasterJob, error: ErrorInfo) -> None:
        """Call under the lock: the job's attempts are killed now, its output undone on this thread."""
        job.error = error
        self._carry_out(job, job.tasks.handle(JobCancelled()))
        self._work.put(lambda: self._undo(job, "cancelled"))

    def discard(self, job: MasterJob, attempt: Attempt) -> None:
        def discard() -> None:
            try:
                job.commit.discard(attempt.id)
            except Exception as exc:
                log.warning("job %s: could not remove attempt %s output: %s", job.id, attempt.id, exc)

        self._work.put(discard)

    def _abort(self, job: MasterJob, error: ErrorInfo) -> None:
        with self.lock:
            if job.error is not None:
                return
            job.error = error
            self._carry_out(job, job.tasks.handle(JobAborted()))  # cancels what still runs
        self._undo(job, "failed")

    def _undo(self, job: MasterJob, state: str) -> None:
        try:
            job.commit.abort()
        except Exception as exc:
            log.warning("job %s: could not clean up its output: %s", job.id, exc)
        with self.lock:
            self._on_end(job, state)


# ---------------------------------------------------------------- scheduling


class Scheduler:
    """The running master jobs: heartbeat news in as task events, attempts out, actions carried out."""

    def __init__(self, registry: WorkerRegistry, backup_after: float):
        self.registry = registry
        self.backup_after = backup_after
        self.jobs: dict[str, MasterJob] = {}
        self._ids = itertools.count(1)
        self.committer: Committer  # set by the master, which owns the lock both share

    def running(self) -> list[MasterJob]:
        return [j for j in self.jobs.values() if j.state == "running"]

    def has_pending(self) -> bool:
        """Whether a running job has a task of its current phase waiting for a slot."""
        return any(demand > running for running, demand in (j.tasks.load() for j in self.running()))

    def add(self, spec: StepSpec, splits: list[Split]) -> MasterJob:
        prefer = dict(spec.prefer.items())
        preferred = [prefer.get((s.url, s.start, s.end)) for s in splits]
        job_id = f"job{next(self._ids):04d}"
        self._supersede(spec.output, job_id)
        tasks = JobTasks(len(splits), spec.num_reducers, spec.max_attempts, preferred, LOCALITY_WAIT_SECONDS,
                         self.backup_after, spec.skip_bad_records)
        now = time.monotonic()
        job = self.jobs[job_id] = MasterJob(job_id, spec, splits, tasks, now, StepCommit(spec, job_id), time.time(),
                                                 driver_seen=now)
        log.info("job %s (%s step %d): %d map tasks, %d reduce tasks", job_id, spec.job_name, spec.step, len(splits),
                 spec.num_reducers)
        if not splits and not spec.num_reducers:
            self._succeed(job)
        return job

    def assign(self, worker: WorkerInfo, free: int) -> list[TaskSpec]:
        """Up to `free` attempts for `worker`, each from the running job furthest below its fair share."""
        assigned: list[TaskSpec] = []
        live = self.registry.live_ids()
        jobs = {j.id: j for j in self.running()}  # in submission order
        slots = self.registry.live_slots()
        while len(assigned) < free and jobs:
            load = {job_id: job.tasks.load() for job_id, job in jobs.items()}
            job_shares = fairshare.shares({job_id: demand for job_id, (_, demand) in load.items()}, slots)
            job_id = fairshare.next_job({job_id: running for job_id, (running, _) in load.items()}, job_shares)
            if job_id is None:
                break
            job, now = jobs[job_id], time.monotonic()
            actions = job.tasks.handle(WorkerReady(worker.id, now, live))
            if not actions:
                del jobs[job_id]  # nothing of it for this worker now: the next job's turn
                continue
            for action in actions:
                attempt = action.attempt
                if attempt.backup:
                    first = job.tasks.task_of(attempt).running()[0]
                    log.info("job %s: %s on %s has run %.1fs; backup attempt %s on %s", job.id, first.id,
                             first.worker, now - first.started, attempt.id, worker.id)
                assigned.append(self._task_spec(job, attempt))
        return assigned

    def _task_spec(self, job: MasterJob, attempt: Attempt) -> TaskSpec:
        spec = job.spec
        task = TaskSpec(job.id, attempt.id, attempt.kind, attempt.index, spec.step, spec.params, spec.storage_options,
                        len(job.tasks.reduces), task_timeout=spec.task_timeout, task_memory_mb=spec.task_memory_mb,
                        session=spec.session, skip=list(attempt.skip))
        if attempt.kind == MAP:
            task.split, task.input_format, task.sort_buffer_bytes = (job.splits[attempt.index], spec.input_format,
                                                                     spec.sort_buffer_bytes)
        else:
            task.sources_ref = self._sources_ref(job, attempt.index)
        if job.tasks.writes_part(attempt):
            task.output, task.output_format = spec.output, spec.output_format
        task.log_level = spec.log_level
        return task

    def _sources_ref(self, job: MasterJob, partition: int) -> SourcesRef:
        """Where a reduce fetches its partition from: a generation of the columns every reduce shares, made
        once while the maps' winners stay, and the rows whose segment for this partition holds records."""
        if job.shared_sources is None:
            maps, addresses = job.tasks.maps, {}
            hosts = [addresses.setdefault(self.registry.workers[t.winner.worker].shuffle, len(addresses)) for t in maps]
            job.sources_generation += 1
            job.shared_sources = (SharedSources(job.sources_generation, list(addresses), hosts,
                                                [t.attempts.index(t.winner) for t in maps]),
                                  FilledRows([t.result for t in maps]))
        shared, filled = job.shared_sources
        return SourcesRef(shared.generation, FetchRows.of(filled.of(partition), len(shared)))

    def sources_lacking(self, assign: list[TaskSpec], held: dict[str, int]) -> dict[str, SharedSources]:
        """The shared sources of the assigned reduces' jobs, where the worker holds another generation than they
        name (under the lock, right after `assign`: the generation they name is their job's current one; were
        it not, the worker would not run them, and they would be launched again)."""
        lacking = {}
        for task in assign:
            ref = task.sources_ref
            if ref is not None and held.get(task.job_id) != ref.generation:
                lacking[task.job_id] = self.jobs[task.job_id].shared_sources[0]
        return lacking

    def finished(self, worker: WorkerInfo, report: AttemptReport) -> None:
        job = self.jobs.get(report.job_id)
        if job is None:
            return
        job.notes[report.attempt_id] = AttemptNote(time.monotonic(), report.log, report.error)
        if report.ok:  # a map's result is kept for every map task until the job is forgotten: a bit a segment
            result = report.part if report.map_output is None else KeptMapOutput(report.map_output)
            event = AttemptSucceeded(report.attempt_id, result, time.monotonic())
        elif report.fetch_failed is not None:
            event = FetchFailed(report.attempt_id, report.fetch_failed.map_index, report.fetch_failed.map_attempt,
                                asdict(report.error))
            log.warning("job %s: reduce attempt %s on %s could not fetch its input; the map outputs of the worker "
                        "it fetched from will be made again: %s", job.id, report.attempt_id, worker.id,
                        report.error.message)
        else:
            error = report.error
            event = AttemptFailed(report.attempt_id, asdict(error), error.final, error.worker_fault, self.registry.live_ids())
            log.warning("job %s: attempt %s failed on %s: %s", job.id, report.attempt_id, worker.id,
                        report.error.message.splitlines()[0])
        attempt = job.tasks.attempts.get(report.attempt_id)
        task = job.tasks.task_of(attempt) if attempt is not None else None
        before = task.result if task is not None else None
        actions = job.tasks.handle(event)
        if task is not None and task.result is not before:
            job.replaced(task, before, report.map_output)  # before the actions: the job's success reads its counters
        self.carry_out(job, actions)

    def reconcile(self, worker: WorkerInfo, finished: set) -> None:
        """Attempts launched on `worker` that it neither runs nor reports finished never reached it."""
        reported = {(r.job_id, r.attempt_id) for r in worker.running} | finished
        for job in self.running():
            for attempt in job.tasks.running_on(worker.id):
                if (job.id, attempt.id) not in reported:
                    log.warning("job %s: attempt %s never reached %s; launching it again", job.id, attempt.id, worker.id)
                    self.carry_out(job, job.tasks.handle(AttemptLost(attempt.id)))

    def lose(self, worker: WorkerInfo) -> None:
        self.registry.drop(worker)
        for job in self.running():
            self.carry_out(job, job.tasks.handle(WorkerLost(worker.id, self.registry.live_ids())))

    def cancel(self, job: MasterJob, reason: str) -> None:
        log.warning("job %s cancelled: %s", job.id, reason)
        self.committer.cancel_job(job, ErrorInfo(f"cancelled: {reason}"))

    def cancel_orphans(self, grace: float) -> None:
        """Cancel the running jobs whose driver went away (Ctrl-C, killed, cut off) `grace` seconds ago."""
        now = time.monotonic()
        for job in self.running():
            if not job.ending() and now - job.driver_seen > grace:
                self.cancel(job, f"its driver has not asked for its status for {grace:g}s (interrupted, killed or "
                                 f"cut off)")

    def _supersede(self, output: str, new_id: str) -> None:
        """One output, one writer: a new job writing a running job's output cancels that job first (its
        undoing runs on the committer before any commit of the new job's)."""
        for job in self.running():
            if job.spec.output == output and not job.ending():
                self.cancel(job, f"job {new_id} was submitted writing the same output {output}")

    def carry_out(self, job: MasterJob, actions: list) -> None:
        for action in actions:
            if isinstance(action, Cancel):
                # The worker kills the attempt and then removes what it wrote; removing it here too
                # covers a worker that never comes back.
                worker = self.registry.workers.get(action.attempt.worker)
                if worker is not None and worker.alive:
                    worker.cancels.append(AttemptRef(job.id, action.attempt.id))
                if job.tasks.writes_part(action.attempt):
                    self.committer.discard(job, action.attempt)
            elif isinstance(action, Discard):
                self.committer.discard(job, action.attempt)
            elif isinstance(action, Commit):
                self.committer.commit_task(job, action.attempt)
            elif isinstance(action, Exclude):
                log.warning("job %s: worker %s gets no more of its attempts: %s", job.id, action.worker, action.reason)
            elif isinstance(action, JobSucceeded):
                self._succeed(job)
            elif isinstance(action, JobFailed):
                self.committer.fail_job(job, self._failure(job, action))

    def _succeed(self, job: MasterJob) -> None:
        parts = [t.result for t in job.tasks.reduces or job.tasks.maps]  # a map-only job's maps wrote its parts
        job.manifest = manifest(job.spec, parts, len(job.tasks.maps), job.counters())
        job.skipped = _skipped_records(job)
        if job.skipped:
            job.manifest["skipped"] = {"records": len(job.skipped), "file": outputs.skipped_name(job.spec.step)}
        self.committer.commit_job(job)

    @staticmethod
    def _failure(job: MasterJob, action: JobFailed) -> ErrorInfo:
        """The error a failed master job reports: which task failed, where, how often, and its last error."""
        task, error = action.task, action.error
        name = f"{task.name}{job.where(task)}"
        failed = [a for a in task.attempts if a.state is AttemptState.FAILED]
        note = job.notes.get(failed[-1].id) if failed else None
        message = with_log_tail(error["message"] + _skip_limit(error, job.tasks.skip_bad_records),
                                note.log if note else "")
        if error.get("final"):
            return ErrorInfo(RecordError.not_retried(name, message).message, error.get("traceback", ""), True)
        if task.failures >= job.tasks.max_attempts:
            workers = {a.worker for a in failed}
            what = failed_on_all(name, task.failures, message, workers)
        else:
            what = f"{name} {message}"
        return ErrorInfo(what, error.get("traceback", ""))

    def end(self, job: MasterJob, state: str) -> bool:
        """The job ended; True when an older finished job was forgotten for it (KEEP_FINISHED_JOBS)."""
        job.state, job.finished = state, time.monotonic()
        log.info("job %s %s in %.2fs", job.id, state, job.finished - job.started)
        for worker in self.registry.alive():
            worker.forget.append(job.id)
        finished = [j.id for j in self.jobs.values() if j.state != "running"]
        for job_id in finished[:-KEEP_FINISHED_JOBS]:
            del self.jobs[job_id]
        return len(finished) > KEEP_FINISHED_JOBS


class HeapFreezer:
    """Keeps the cyclic GC's full collections short while big jobs run. Every FREEZE_SECONDS the objects
    that survived the young collections (jobs' tasks, attempts and results, which live as long as their
    job is kept) are moved out of the collector's reach (`gc.freeze`), so a full collection walks what
    came since, not the whole heap: at 50,000 tasks those took up to half a second each, the master's
    connections stalled meanwhile. Frozen objects are still freed by reference counting; cycles among
    them wait for `thaw` (when a job is forgotten), which hands them back to the collector."""

    def __init__(self):
        self._frozen_at = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._frozen_at >= FREEZE_SECONDS:
            gc.collect(1)  # the young garbage first (a short pause): only survivors are frozen
            gc.freeze()
            self._frozen_at = now

    @staticmethod
    def thaw() -> None:
        gc.unfreeze()


# ---------------------------------------------------------------- the master


class Master:
    def __init__(self, host: str, port: int, secret: bytes, worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME, backup_after: float = DEFAULT_BACKUP_AFTER,
                 driver_grace: float = DEFAULT_DRIVER_GRACE):
        self.worker_timeout = worker_timeout
        self.driver_grace = driver_grace
        self.lock = threading.Condition()
        self.registry = WorkerRegistry()
        self.scheduler = Scheduler(self.registry, backup_after)
        self.scheduler.committer = Committer(self.lock, self._end, self.scheduler.carry_out, self.success_report)
        self.history: history.Writer | None = None  # where finished jobs' reports go, if anywhere
        self._stopped = threading.Event()
        self._handlers = {
            Register: self._register, Goodbye: self._goodbye, Submit: self._submit, JobStatusRequest: self._job_status,
            StatusRequest: self._status, Kill: self._kill, LogsRequest: self._logs,
        }
        self._polls = LongPolls()
        self._status_waits = StatusWaits()
        self._heap = HeapFreezer()
        self._answers: collections.deque = collections.deque()  # (request, reply) decided under the lock, sent off it
        # Every request is answered on the connections' loop thread but a submit, which lists its input.
        self.server = comm.LoopServer(host, port, secret, self._serve, "master", max_frame,
                                      threaded=frozenset({"submit"}))

    @property
    def address(self) -> str:
        return self.server.address

    def start(self) -> "Master":
        self.server.start()
        threading.Thread(target=self._monitor, name="master-monitor", daemon=True).start()
        threading.Thread(target=self._expire_polls, name="master-long-polls", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self.lock:
            self.lock.notify_all()  # the long-polls' thread ends
        self.server.stop()

    def _serve(self, request: comm.Request) -> None:
        msg = from_wire(request.msg)
        if isinstance(msg, Heartbeat):
            self._heartbeat(msg, request)  # answers at once, or parks the request until work or its deadline
            return
        if isinstance(msg, JobStatusRequest) and msg.wait > 0 and self._hold_status(msg, request):
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise protocol.ProtocolError(f"a {msg.type!r} message is not for the master")
        try:
            reply = to_wire(handler(msg))
        except MrEngineError as exc:
            reply = protocol.error_reply(exc)
        request.reply(reply)
        self._send_answers()

    def report(self, job: MasterJob) -> dict:
        """The job's report (`jobreport`) as of now; call under the lock, render or write it after."""
        return job_report(self.registry.instance, job, time.monotonic())

    def success_report(self, job: MasterJob) -> bytearray:
        """The `_REPORT.json` text of `job`, succeeded as of now (call under the lock)."""
        return report_json(self.registry.instance, job, time.monotonic(), state="succeeded", finished=round(time.time(), 3))

    def _end(self, job: MasterJob, state: str) -> None:
        if self.scheduler.end(job, state):
            self._heap.thaw()  # the forgotten job's cycles, if any, are the collector's again
        held = self._status_waits.of_job(job.id)
        if held:
            status = self._status_of(job)
            self._answers += [(request, status) for request in held]
            self.lock.notify_all()  # the long-polls' thread sends them
        if self.history is not None:  # a snapshot, made a row at a time; the writer's thread writes it
            name = history.record_name({"id": job.id, "master": self.registry.instance, "started": started(job)})
            self.history.submit(name, report_json(self.registry.instance, job, job.finished))

    def _lose(self, worker: WorkerInfo) -> None:
        self.scheduler.lose(worker)
        poll = self._polls.pop(worker.id)
        if poll is not None:
            self._answers.append((poll.request, Reregister()))
        self._answer_polls()  # its attempts are pending again

    # ------------------------------------------------------------ workers

    def _register(self, msg: Register) -> Registered:
        with self.lock:
            previous = self.registry.live(msg.previous, msg.master)
            worker = self.registry.add(msg)
            if previous is not None:
                log.warning("worker %s registers again as %s: its attempts and map outputs are dropped", previous.id,
                            worker.id)
                self._lose(previous)
            log.info("worker %s joined from %s (%d slots)", worker.id, msg.shuffle, msg.slots)
        return Registered(worker.id, self.worker_timeout, self.registry.instance)

    def _goodbye(self, msg: Goodbye) -> Ok:
        with self.lock:
            worker = self.registry.live(msg.worker_id, msg.master)
            if worker is not None:
                log.info("worker %s left", worker.id)
                self._lose(worker)
        return Ok()

    def _heartbeat(self, msg: Heartbeat, request: comm.Request) -> None:
        arrived = time.monotonic()
        worker = self.registry.live(msg.worker_id, msg.master)
        if worker is not None:
            worker.last_seen = arrived  # before the lock: a busy master must not time workers out
        with self.lock:
            reply = self._beat(worker, msg, request, arrived)
        if reply is not None:
            request.reply(to_wire(reply))
        self._send_answers()

    def _beat(self, worker: WorkerInfo | None, msg: Heartbeat, request: comm.Request,
              arrived: float) -> Work | Reregister | None:
        """Under the lock: the heartbeat's news in, and its reply; None when it is parked as a long-poll."""
        if worker is None or not worker.alive:  # (it may have died while we waited for the lock)
            return Reregister()
        stale = self._polls.pop(worker.id)
        if stale is not None:  # parked on a connection the worker has since left for this one
            stale.request.close()
        interval = heartbeat_interval(len(self.registry.live_ids()), self.worker_timeout)
        worker.running = list(msg.running)
        for report in msg.finished:
            self.scheduler.finished(worker, report)
        self.scheduler.reconcile(worker, {(r.job_id, r.attempt_id) for r in msg.finished})
        assign = self.scheduler.assign(worker, msg.free_slots)
        deadline = arrived + LONG_POLL_SECONDS * interval / HEARTBEAT_SECONDS
        if (msg.free_slots and not assign and not msg.finished and time.monotonic() < deadline
                and not self._stopped.is_set()):
            self._park(LongPoll(worker, msg, request, deadline, interval))
            return None
        self._answer_polls()  # what its reports made pending, once it has had its own pick
        return self._work(worker, msg, assign, False, interval)

    def _work(self, worker: WorkerInfo, msg: Heartbeat, assign: list[TaskSpec], polled: bool,
              interval: float) -> Work:
        """Under the lock: the reply to a heartbeat, carrying what waits to go down to its worker."""
        # A job's pickled code (with a round's broadcast) goes to a worker once, not with every task:
        # the heartbeat says which jobs the worker holds.
        held = set(msg.jobs)
        jobs = {t.job_id: self.scheduler.jobs[t.job_id].spec.job_bytes for t in assign if t.job_id not in held}
        # So do the map source columns a job's reduces share, once per generation (docs/PERFORMANCE.md, "Large R").
        reply = Work(assign, jobs, worker.cancels, worker.forget, polled, interval,
                     sources=self.scheduler.sources_lacking(assign, msg.sources))
        worker.last_seen = time.monotonic()
        worker.cancels, worker.forget = [], []
        return reply

    # ------------------------------------------------------------ long-polls

    def _park(self, poll: LongPoll) -> None:
        """Under the lock: hold an idle worker's heartbeat, which holds no thread, until work or its deadline."""
        earliest = self._polls.next_deadline()
        self._polls.park(poll)
        if earliest is None or poll.deadline < earliest:
            self.lock.notify_all()  # the long-polls' thread waits for an earlier deadline now

    def _answer_polls(self) -> None:
        """Under the lock: give the work that is waiting to the parked long-polls, oldest first."""
        if not self._polls or not self.scheduler.has_pending():
            return
        for poll in self._polls.oldest_first():
            assign = self.scheduler.assign(poll.worker, poll.msg.free_slots)
            if assign:
                self._polls.pop(poll.worker.id)
                self._answers.append((poll.request, self._work(poll.worker, poll.msg, assign, True, poll.interval)))
                if not self.scheduler.has_pending():
                    return

    def _expire_polls(self) -> None:
        """Answer each parked long-poll at its deadline: with work that may be its now (a map whose
        preferred worker has had its wait), or none, `polled`."""
        while not self._stopped.is_set():
            with self.lock:
                for poll in self._polls.due(time.monotonic()):
                    pending = self.scheduler.has_pending()
                    assign = self.scheduler.assign(poll.worker, poll.msg.free_slots) if pending else []
                    self._answers.append((poll.request, self._work(poll.worker, poll.msg, assign, True, poll.interval)))
                self._answers += [(request, self._status_of(job)) for request, job in self._status_waits.due(time.monotonic())]
                if not self._answers:
                    deadline = min(filter(None, (self._polls.next_deadline(), self._status_waits.next_deadline())),
                                   default=None)
                    self.lock.wait(None if deadline is None else max(deadline - time.monotonic(), 0.001))
            self._send_answers()

    def _send_answers(self) -> None:
        """Off the lock: send the replies decided under it (any thread may, each goes once)."""
        while True:
            try:
                request, reply = self._answers.popleft()
            except IndexError:
                return
            request.reply(to_wire(reply))

    def _monitor(self) -> None:
        while not self._stopped.wait(min(0.25, self.worker_timeout / 4)):
            self._heap.tick()
            with self.lock:
                for worker, silent in self.registry.silent(self.worker_timeout):
                    log.warning("worker %s (%s) silent for %.1fs: declared dead; its running attempts and the map "
                                "outputs still needed will be made again", worker.id, worker.shuffle, silent)
                    self._lose(worker)
                self.scheduler.cancel_orphans(self.driver_grace)
            self._send_answers()

    # ------------------------------------------------------------ drivers

    def _submit(self, msg: Submit) -> Submitted:
        spec, splits = plan(msg.spec)  # storage calls: before the lock
        with self.lock:
            job = self.scheduler.add(spec, splits)
            self._answer_polls()
        return Submitted(job.id, len(splits), spec.num_reducers)

    def _hold_status(self, msg: JobStatusRequest, request: comm.Request) -> bool:
        """Hold a status request of a running job until the job ends or `msg.wait` passes (never so
        long that a waiting driver looks gone, see `--driver-grace`); False for one to answer now."""
        job = self.scheduler.jobs.get(msg.job_id)
        if job is None:
            return False
        job.driver_seen = time.monotonic()
        with self.lock:
            if job.state != "running":
                return False
            self._status_waits.hold(request, job, job.driver_seen + min(msg.wait, self.driver_grace / 4))
            self.lock.notify_all()  # the long-polls' thread may have a later deadline to wait for
        return True

    def _job_status(self, msg: JobStatusRequest) -> StepStatus:
        job = self.scheduler.jobs.get(msg.job_id)
        if job is not None:
            job.driver_seen = time.monotonic()  # before the lock: a busy master must not cancel a job whose driver asks
        with self.lock:
            if job is None:
                raise StorageError(f"no job {msg.job_id!r} on this master")
            return self._status_of(job)

    def _status_of(self, job: MasterJob) -> StepStatus:
        """Under the lock: where the job stands, as its driver is told."""
        end = job.finished if job.state != "running" else time.monotonic()
        # Where each split's map ran, for a driver whose next job reads the same splits (see `prefer`).
        map_workers = SplitPlaces.of(((s.url, s.start, s.end), t.winner.worker) for s, t in zip(job.splits, job.tasks.maps)
                                     if t.winner) if job.state == "succeeded" else SplitPlaces()
        return StepStatus(job.state, TaskCounts(**job.tasks.counts()), job.counters(), end - job.started,
                          job.error, job.manifest if job.state == "succeeded" else None,
                          len(self.registry.alive()), map_workers, _exclusions(job))

    def _kill(self, msg: Kill) -> Ok:
        self.kill(msg.job_id, "`mrengine kill`")
        return Ok()

    def kill(self, job_id: str, by: str) -> None:
        """Cancel a running job, as `mrengine kill` and the web UI's kill button ask; a UsageError says why not."""
        with self.lock:
            job = self.scheduler.jobs.get(job_id)
            if job is None:
                raise UsageError(f"no job {job_id!r} on this master (`mrengine jobs` lists them)")
            if job.state != "running":
                raise UsageError(f"job {job.id} is not running: it {job.state}")
            if job.ending():
                raise UsageError(f"job {job.id} is ending already: " + (job.error.message if job.error
                                                                        else "its output is being committed"))
            self.scheduler.cancel(job, f"killed by {by}")

    def _logs(self, msg: LogsRequest) -> Logs:
        with self.lock:
            job = self.scheduler.jobs.get(msg.job_id)
            if job is None:
                raise UsageError(f"no job {msg.job_id!r} on this master (it keeps the last jobs only; "
                                 f"`mrengine logs {msg.job_id} --history-dir DIR` reads the history)")
            report = self.report(job)
        return Logs([list(pair) for pair in history.attempt_logs(report, msg.task)])

    def _status(self, msg: StatusRequest) -> ClusterStatus:
        with self.lock:
            now = time.monotonic()
            jobs = [JobRow(j.id, j.spec.job_name, j.spec.step, j.state, TaskCounts(**j.tasks.counts()),
                           round((j.finished or now) - j.started, 2), j.error and j.error.message,
                           _task_rows(j, now) if j.state == "running" or msg.tasks else None, _exclusions(j))
                    for j in self.scheduler.jobs.values()]
            return ClusterStatus(self.registry.rows(now), jobs)


def _exclusions(job: MasterJob) -> list[str]:
    return [f"{worker}: {reason}" for worker, reason in job.tasks.excluded.items()]


def _skip_limit(error: dict, skip_bad_records: int) -> str:
    """The sentence saying that a job failed because skipping bad records could not go on, if it did."""
    if "skip_budget" in error:
        return (f"; this record failed twice too, and skipping it would make {skip_bad_records + 1} bad records "
                f"skipped, more than --skip-bad-records {skip_bad_records} allows")
    if "record_attempts" in error:
        return (f"; its attempts have failed on records {error['record_attempts']} times, more than skipping "
                f"--skip-bad-records {skip_bad_records} records can take (does its code fail on different "
                f"records each time?)")
    return ""


def _skipped_records(job: MasterJob) -> list[dict]:
    """The quarantine entries of the bad records that the job's winning attempts passed over: where each
    was, what it held, and how the job's code failed on it."""
    entries = []
    for task in job.tasks.maps + job.tasks.reduces:
        for number in task.skipped:
            error = task.bad_records[number]
            record = error["record"]
            place = ({"split": job.splits[task.index].describe(), "file": job.splits[task.index].url,
                      "offset": record["offset"]} if task.kind == MAP else {"partition": task.index})
            entries.append({"task": task.name, **place, "index": number, "where": record["where"],
                            "text": record["text"], "error": error["message"], "traceback": error.get("traceback", "")})
    return entries


def heartbeat_interval(live_workers: int, worker_timeout: float) -> float:
    """The workers' heartbeat interval: the default, or longer on a big cluster but well within the
    worker timeout. A worker whose attempt ends reports at once whatever it is.

    >>> heartbeat_interval(100, 5.0), heartbeat_interval(500, 5.0), heartbeat_interval(2000, 60.0)
    (0.5, 1.25, 10.0)
    """
    return max(HEARTBEAT_SECONDS, min(live_workers / HEARTBEATS_PER_SECOND, worker_timeout / 4))


def _task_rows(job: MasterJob, now: float) -> list[TaskRow]:
    def seconds(a: Attempt) -> float | None:  # how long it has run, or took to succeed
        end = now if a.state is AttemptState.RUNNING else a.finished
        return round(end - a.started, 2) if end else None

    return [TaskRow(t.kind, t.index, t.state.value, t.failures,
                    [AttemptRow(a.id, a.worker, a.state.value, a.backup, seconds(a)) for a in t.attempts])
            for t in job.tasks.maps + job.tasks.reduces]


def main(host: str, port: int, secret: bytes, worker_timeout: float, ready_file: str | None,
         backup_after: float = DEFAULT_BACKUP_AFTER, encrypt: bool = False, history_dir: str | None = None,
         ui_bind: tuple[str, int] | None = None, ui_token: str | None = None,
         driver_grace: float = DEFAULT_DRIVER_GRACE) -> None:
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s master %(levelname)s %(message)s", stream=sys.stderr)
    master = Master(host, port, secret, worker_timeout, backup_after=backup_after, driver_grace=driver_grace)
    master.server.encrypt = encrypt
    master.start()
    log.info("listening on %s%s", master.address, " (encrypted)" if encrypt else "")
    ui = _start_ui(master, history_dir, ui_bind, ui_token)
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
    if ui is not None:
        ui.stop()
    if master.history is not None:
        master.history.flush()  # the last jobs' records, before the process goes


def _start_ui(master: Master, history_dir: str | None, ui_bind: tuple[str, int] | None, ui_token: str | None):
    """The job history and the web UI (mrengine/ui), when asked for; returns the UI server or None."""
    if history_dir:
        master.history = history.Writer(history_dir)
    if ui_bind is None:
        return None
    from .ui.server import UIServer
    from .ui.source import MasterSource

    try:
        ui = UIServer(MasterSource(master, history_dir), ui_bind[0], ui_bind[1], ui_token).start()
    except OSError as exc:
        raise ClusterError(f"the web UI cannot listen on {ui_bind[0]}:{ui_bind[1]}: {exc.strerror}") from None
    log.info("web UI at %s%s", ui.url, " (token required)" if ui_token else "")
    return ui
