"""The task state machine of one job step: pure, no sockets, no files, no clocks of its own.

`JobTasks.handle(event)` takes what happened (a worker asks for work, an attempt finished or failed,
a reducer could not fetch a map output, a worker was lost) and returns the actions the master must
carry out (launch, cancel, commit, discard, finish the job). Legal task moves are in `TRANSITIONS`;
anything else is a bug and raises.

Rules, after Hadoop and the MapReduce paper: maps run first; reduces start when every map has succeeded. A
job with no reduce tasks is map-only: its maps write the parts, committed as they win. A
failed attempt is retried, preferably on another worker, until a task has failed `max_attempts` times; then
the job fails. A failure marked final (a record that cannot be read or written: every attempt would fail
alike) fails the job at once. Attempts lost with their worker or on the way to it, cancelled, or unable to
fetch their input are not the task's fault and do not count; nor is an attempt that failed through its
worker's fault (its work dir is full): that worker gets no more of the job, as Hadoop marks a node unhealthy
when its local dirs are full, and once every live worker's disk is full, the job fails. A lost worker's
finished map outputs are re-made while any reduce still needs them; so are those of a worker a reducer could
not fetch from, and that reduce waits, pending, until every map has succeeded again. Near the end of a phase
(no task of it left pending) a task running much longer than its finished peers gets one backup attempt on
another worker; the first attempt to finish wins and the other is cancelled. Counters come from the one
attempt that won each task.

Bad records (`skip_bad_records` > 0; the MapReduce paper's §3.7, Hadoop's skip mode): an attempt that
failed in the job's code on a known record (its error's `record`) is retried without counting against
`max_attempts`; once two attempts have failed on the same record, the task's later attempts skip it
(`Attempt.skip`). The job fails when a record would be the `skip_bad_records + 1`-th skipped, or when
one task has spent `2 * (skip_bad_records + 1)` attempts failing on records (code that fails on
ever-different records).
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator

BACKUP_FACTOR = 2.0  # a task is a straggler once it has run this many times its peers' median ...
DEFAULT_BACKUP_AFTER = 10.0  # ... and at least this many seconds
DEFAULT_MAX_ATTEMPTS = 4  # attempts per task before its job fails (`--max-attempts`)
DEFAULT_TASK_TIMEOUT = 600.0  # seconds without progress before an attempt is killed, as Hadoop's mapreduce.task.timeout
MAX_FETCH_FAILURES_PER_WORKER = 3  # reducers failing to fetch from a worker this often exclude it from the job
SKIP_AFTER_FAILURES = 2  # attempts that must fail on one record before it is skipped (the paper: "more than once")


class TaskState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AttemptState(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"


TRANSITIONS = {
    TaskState.PENDING: {TaskState.RUNNING, TaskState.FAILED},
    TaskState.RUNNING: {TaskState.SUCCEEDED, TaskState.PENDING, TaskState.FAILED},
    TaskState.SUCCEEDED: {TaskState.PENDING},  # a map whose output was lost
    TaskState.FAILED: set(),
}

MAP, REDUCE = "map", "reduce"


def attempt_id(kind: str, index: int, number: int) -> str:
    """The id of attempt `number` (from 0) of task `index`: "m00003.1" is map 3's second. A reduce's map
    sources travel as attempt numbers, from which its worker makes these ids again (`messages.SharedSources`)."""
    return f"{'m' if kind == MAP else 'r'}{index:05d}.{number}"


@dataclass(slots=True)  # one per attempt and task of a job: no per-object dict (docs/PERFORMANCE.md)
class Attempt:
    id: str
    kind: str
    index: int
    worker: str
    state: AttemptState = AttemptState.RUNNING
    started: float = 0.0
    finished: float = 0.0
    backup: bool = False  # launched while another attempt of its task was running
    skip: tuple = ()  # the numbers of the bad records it passes over


@dataclass(slots=True)
class Task:
    kind: str
    index: int
    state: TaskState = TaskState.PENDING
    attempts: list[Attempt] = field(default_factory=list)
    failures: int = 0
    failed_on: frozenset = frozenset()  # replaced, not grown: most tasks never fail, and an empty set is 216 bytes
    winner: Attempt | None = None  # the attempt whose output is in use
    result: dict | None = None  # the last winner's result: map output place, or reduce output stats; and counters
    last_error: dict | None = None
    fetch_failures: int = 0  # reduce attempts lost because a map output could not be fetched
    # Made at a task's first failure on a record (most tasks have none; empty, the three took 370 bytes):
    record_failures: Counter | None = None  # record number -> attempts that failed on it
    bad_records: dict | None = None  # record number -> the error of the last attempt failing on it
    skip: frozenset = frozenset()  # records its next attempts pass over (replaced, not grown)
    skipped: tuple = ()  # records the attempt whose result is in use passed over (its winner may since be lost)

    @property
    def name(self) -> str:
        return f"{self.kind} task {self.index}"

    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.state is AttemptState.RUNNING]

    def move(self, state: TaskState) -> None:
        if state is not self.state and state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal move of {self.name}: {self.state.value} -> {state.value}")
        self.state = state


# ---------------------------------------------------------------- events


@dataclass
class WorkerReady:
    """A worker has a free slot. `live`: every worker alive now (a retry prefers one that has not failed it)."""

    worker: str
    now: float
    live: frozenset = frozenset()


@dataclass
class AttemptSucceeded:
    attempt_id: str
    result: dict
    now: float = 0.0


@dataclass
class AttemptFailed:
    """`final`: another attempt would fail the same way (bad input records), so none is made.
    `worker_fault`: its worker, not the task, is to blame (its disk is full); `live`: every worker alive now."""

    attempt_id: str
    error: dict
    final: bool = False
    worker_fault: bool = False
    live: frozenset = frozenset()


@dataclass
class FetchFailed:
    """A reduce attempt could not fetch map task `map_index`'s output, made by attempt `map_attempt`."""

    attempt_id: str
    map_index: int
    map_attempt: str
    error: dict = field(default_factory=dict)


@dataclass
class WorkerLost:
    """`live`: the workers still alive."""

    worker: str
    live: frozenset = frozenset()


@dataclass
class AttemptLost:
    """The attempt's worker does not have it: the message launching it never arrived."""

    attempt_id: str


@dataclass
class JobAborted:
    """The job cannot go on (its output could not be committed): nothing more runs."""


@dataclass
class JobCancelled:
    """The job is called off (its driver went away, `mrengine kill`, a new job for its output): nothing more runs."""


# ---------------------------------------------------------------- actions


@dataclass
class Launch:
    attempt: Attempt


@dataclass
class Cancel:
    attempt: Attempt


@dataclass
class Commit:
    attempt: Attempt


@dataclass
class Discard:
    attempt: Attempt


@dataclass
class Exclude:
    """The job gives `worker` no more attempts, for `reason`."""

    worker: str
    reason: str


@dataclass
class JobSucceeded:
    pass


@dataclass
class JobFailed:
    task: Task
    error: dict


class PendingQueue:
    """The pending tasks of one phase in index order, found without looking at the others: those never
    launched lie from `fresh` on, those pending again (retried, or their output or worker lost) are
    kept sorted in `again`. Entries are dropped lazily, once their task has moved on."""

    def __init__(self, size: int):
        self.size, self.fresh = size, 0
        self.again: list[int] = []

    def requeue(self, index: int) -> None:
        if index < self.fresh and index not in self.again:
            bisect.insort(self.again, index)

    def tasks(self, phase: list[Task]) -> Iterator[Task]:
        """Candidates in index order: every pending task is among them (callers check the state)."""
        self.again = [i for i in self.again if phase[i].state is TaskState.PENDING]
        while self.fresh < self.size and phase[self.fresh].state is not TaskState.PENDING:
            self.fresh += 1
        for i in list(self.again):
            yield phase[i]
        for i in range(self.fresh, self.size):
            yield phase[i]


class JobTasks:
    """`preferred[i]`: the worker map task i should run on if it can (it may hold the split's records in
    memory); another worker takes it only when that one is gone or `locality_wait` seconds have passed
    since the first worker asked for work. `backup_after`: seconds a task must have run before it may
    get a backup attempt (0: never). `skip_bad_records`: how many records the job may skip (0: none)."""

    def __init__(self, num_maps: int, num_reduces: int, max_attempts: int = DEFAULT_MAX_ATTEMPTS, preferred: list | None = None,
                 locality_wait: float = 0.0, backup_after: float = DEFAULT_BACKUP_AFTER, skip_bad_records: int = 0):
        self.maps = [Task(MAP, i) for i in range(num_maps)]
        self.reduces = [Task(REDUCE, i) for i in range(num_reduces)]
        self.max_attempts = max_attempts
        self.backup_after = backup_after
        self.skip_bad_records = skip_bad_records
        self.skipped = 0  # records in the tasks' skip sets
        self.attempts: dict[str, Attempt] = {}
        self.attempts_failed = 0  # counted as they fail: counts() must not walk every attempt
        self.done = False
        self.preferred = list(preferred) if preferred else [None] * num_maps
        self._any_preferred = any(w is not None for w in self.preferred)
        self.locality_wait = locality_wait
        self.first_ready: float | None = None
        # Kept as tasks move, so that a heartbeat costs the same whatever the job's size.
        self._pending = {MAP: PendingQueue(num_maps), REDUCE: PendingQueue(num_reduces)}
        self._in_state = {(kind, state): 0 for kind in (MAP, REDUCE) for state in TaskState}
        self._in_state[MAP, TaskState.PENDING], self._in_state[REDUCE, TaskState.PENDING] = num_maps, num_reduces
        self._running: dict[str, dict[str, Attempt]] = {}  # worker -> its attempts launched and maybe still running
        self._took = {MAP: [], REDUCE: []}  # how long each winning attempt of a phase ran
        self._median: dict[str, tuple[int, float]] = {}  # kind -> (of how many winners, their median time)
        self.fetch_failures_from: Counter = Counter()  # worker -> fetches of its map outputs that failed
        self.excluded: dict[str, str] = {}  # worker -> why this job gives it no more attempts
        self.full_disks: dict[str, str] = {}  # worker -> its disk-full error, for the job's error if every one is full

    # ------------------------------------------------------------ queries

    def task_of(self, attempt: Attempt) -> Task:
        return (self.maps if attempt.kind == MAP else self.reduces)[attempt.index]

    def maps_done(self) -> bool:
        return self._in_state[MAP, TaskState.SUCCEEDED] == len(self.maps)

    def reduces_done(self) -> bool:
        return self._in_state[REDUCE, TaskState.SUCCEEDED] == len(self.reduces)

    def writes_part(self, attempt: Attempt) -> bool:
        """Whether the attempt writes a part file under the output: a reduce, or a map-only job's map."""
        return attempt.kind == REDUCE or not self.reduces

    def load(self) -> tuple[int, int]:
        """(tasks running, tasks of the current phase still to run or running): what a fair share weighs."""
        kind = REDUCE if self.maps_done() else MAP
        running = self._in_state[MAP, TaskState.RUNNING] + self._in_state[REDUCE, TaskState.RUNNING]
        return running, running + self._in_state[kind, TaskState.PENDING]

    def counts(self) -> dict:
        n = self._in_state
        return {
            "maps": len(self.maps), "maps_done": n[MAP, TaskState.SUCCEEDED], "maps_running": n[MAP, TaskState.RUNNING],
            "reduces": len(self.reduces), "reduces_done": n[REDUCE, TaskState.SUCCEEDED],
            "reduces_running": n[REDUCE, TaskState.RUNNING], "attempts": len(self.attempts),
            "attempts_failed": self.attempts_failed,
        }

    def counted(self) -> list[Task]:
        """Tasks whose counters count: each has succeeded, though a map's output may since be re-made."""
        return [t for t in self.maps + self.reduces if t.result is not None]

    def running_on(self, worker: str) -> list[Attempt]:
        launched = self._running.get(worker, {})
        for attempt_id in [i for i, a in launched.items() if a.state is not AttemptState.RUNNING]:
            del launched[attempt_id]  # each attempt is dropped once: a worker's query costs what it runs
        return list(launched.values())

    def _move(self, task: Task, state: TaskState) -> None:
        """Every task move goes through here, keeping the counts and the pending queues true."""
        before = task.state
        task.move(state)
        if state is not before:
            self._in_state[task.kind, before] -= 1
            self._in_state[task.kind, state] += 1
            if state is TaskState.PENDING:
                self._pending[task.kind].requeue(task.index)

    # ------------------------------------------------------------ the one entry point

    def handle(self, event: Any) -> list:
        if self.done:
            attempt = self.attempts.get(getattr(event, "attempt_id", None))
            if attempt is None or isinstance(event, AttemptLost):
                return []
            if attempt.state is AttemptState.RUNNING:
                attempt.state = AttemptState.KILLED
            return self._late_news(attempt)
        handler = {
            WorkerReady: self._worker_ready,
            AttemptSucceeded: self._succeeded,
            AttemptFailed: self._failed,
            FetchFailed: self._fetch_failed,
            WorkerLost: self._worker_lost,
            AttemptLost: self._attempt_lost,
            JobAborted: self._stop,
            JobCancelled: self._stop,
        }[type(event)]
        return handler(event)

    def _worker_ready(self, ev: WorkerReady) -> list:
        if self.first_ready is None:
            self.first_ready = ev.now
        if ev.worker in self.full_disks:
            return []  # it would fail again; were it the last one, the job has failed
        if ev.worker in self.excluded and not ev.live <= self.excluded.keys():
            return []
        phase = self.maps if not self.maps_done() else self.reduces
        kind = MAP if phase is self.maps else REDUCE
        pending = (t for t in self._pending[kind].tasks(phase) if t.state is TaskState.PENDING)
        allowed = (t for t in pending if ev.worker not in t.failed_on or ev.live <= t.failed_on)
        choice = self._local_choice(allowed, ev) if kind == MAP else next(allowed, None)
        backup = False
        if choice is None and not self._in_state[kind, TaskState.PENDING]:
            choice, backup = self._straggler(phase, ev), True
        if choice is None:
            return []
        attempt = Attempt(attempt_id(choice.kind, choice.index, len(choice.attempts)), choice.kind, choice.index, ev.worker,
                          started=ev.now, backup=backup, skip=tuple(sorted(choice.skip)))
        choice.attempts.append(attempt)
        self.attempts[attempt.id] = attempt
        self._running.setdefault(ev.worker, {})[attempt.id] = attempt
        self._move(choice, TaskState.RUNNING)
        return [Launch(attempt)]

    def _straggler(self, phase: list[Task], ev: WorkerReady) -> Task | None:
        """The task of this phase most in need of a backup attempt on `ev.worker`, if any."""
        if self.backup_after <= 0:
            return None
        kind = phase[0].kind if phase else MAP
        median = self._median_took(kind)
        if median is None:
            return None  # nothing to compare with yet
        limit = max(self.backup_after, BACKUP_FACTOR * median)
        slow: list[tuple[float, Task]] = []
        for task in {(a.kind, a.index): self.task_of(a) for a in self._running_attempts() if a.kind == kind}.values():
            running = task.running()
            if len(running) != 1 or running[0].worker == ev.worker or ev.worker in task.failed_on:
                continue  # already backed up, or this worker would be no better
            if ev.now - running[0].started > limit:
                slow.append((ev.now - running[0].started, task))
        return max(slow, key=lambda pair: pair[0])[1] if slow else None

    def _median_took(self, kind: str) -> float | None:
        """The median time of a phase's winning attempts, sorted again only once 1/64 more have finished
        (at the end of a phase every idle worker's heartbeat asks)."""
        took = self._took[kind]
        known, median = self._median.get(kind, (0, None))
        if took and len(took) > known + known // 64:
            known, median = len(took), statistics.median(took)
            self._median[kind] = (known, median)
        return median

    def _running_attempts(self) -> list[Attempt]:
        return [a for worker in list(self._running) for a in self.running_on(worker)]

    def _local_choice(self, allowed: Iterator[Task], ev: WorkerReady) -> Task | None:
        """A map that prefers this worker; else one that prefers no live worker; else, after the wait, any."""
        if not self._any_preferred:
            return next(allowed, None)  # the common case, at once: nothing to look through
        waited = ev.now - self.first_ready >= self.locality_wait
        fallback = None
        for task in allowed:
            want = self.preferred[task.index]
            if want == ev.worker:
                return task
            if fallback is None and (want is None or want not in ev.live or waited):
                fallback = task
        return fallback

    def _live_attempt(self, attempt_id: str) -> Attempt | None:
        attempt = self.attempts.get(attempt_id)
        if attempt is None or attempt.state is not AttemptState.RUNNING:
            return None  # late news of an attempt already cancelled or lost
        return attempt

    def _late_news(self, attempt: Attempt | None) -> list:
        """A cancelled or lost attempt reports after all: whatever output it wrote must go."""
        if attempt is None or not self.writes_part(attempt) or attempt.state is AttemptState.SUCCEEDED:
            return []
        return [Discard(attempt)]

    def _succeeded(self, ev: AttemptSucceeded) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return self._late_news(self.attempts.get(ev.attempt_id))
        task = self.task_of(attempt)
        attempt.state = AttemptState.SUCCEEDED
        attempt.finished = ev.now
        task.winner, task.result, task.skipped = attempt, ev.result, attempt.skip
        self._move(task, TaskState.SUCCEEDED)
        self._took[task.kind].append(attempt.finished - attempt.started)
        actions: list = []
        actions = self._cancel(task.running())  # backups that lost the race
        if self.writes_part(attempt):
            actions.append(Commit(attempt))
        if attempt.kind == REDUCE and self.reduces_done():
            # Maps still re-making a lost output are needed no more.
            actions += self._cancel([a for a in self.attempts.values() if a.state is AttemptState.RUNNING])
            self.done = True
            actions.append(JobSucceeded())
        elif self.maps_done() and not self.reduces:
            self.done = True
            actions.append(JobSucceeded())
        return actions

    @staticmethod
    def _cancel(attempts: list[Attempt]) -> list:
        for a in attempts:
            a.state = AttemptState.KILLED
        return [Cancel(a) for a in attempts]

    def _failed(self, ev: AttemptFailed) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return self._late_news(self.attempts.get(ev.attempt_id))
        attempt.state = AttemptState.FAILED
        self.attempts_failed += 1
        if ev.worker_fault:
            return self._worker_failed(attempt, ev)
        task = self.task_of(attempt)
        task.last_error = ev.error
        actions: list = [Discard(attempt)] if self.writes_part(attempt) else []
        record = ev.error.get("record") if self.skip_bad_records else None
        if record is not None:
            return actions + self._failed_on_record(task, record["number"], ev.error)
        task.failures += 1
        task.failed_on |= {attempt.worker}
        if ev.final or task.failures >= self.max_attempts:
            self._move(task, TaskState.FAILED)
            return actions + self._fail_job(task, ev.error)
        return actions + self._retry(task)

    def _failed_on_record(self, task: Task, number: int, error: dict) -> list:
        """An attempt failed in the job's code on record `number` of its task (not counted in `failures`)."""
        if task.record_failures is None:
            task.record_failures, task.bad_records = Counter(), {}
        task.record_failures[number] += 1
        task.bad_records[number] = error
        if task.record_failures[number] >= SKIP_AFTER_FAILURES and number not in task.skip:
            if self.skipped == self.skip_bad_records:
                self._move(task, TaskState.FAILED)
                return self._fail_job(task, {**error, "skip_budget": self.skip_bad_records})
            self.skipped += 1
            task.skip |= {number}
        elif sum(task.record_failures.values()) >= SKIP_AFTER_FAILURES * (self.skip_bad_records + 1):
            self._move(task, TaskState.FAILED)
            return self._fail_job(task, {**error, "record_attempts": sum(task.record_failures.values())})
        return self._retry(task)

    def _retry(self, task: Task) -> list:
        """The task runs again, once no attempt of it is left running."""
        if task.state is TaskState.RUNNING and not task.running():
            self._move(task, TaskState.PENDING)
        return []

    def _worker_failed(self, attempt: Attempt, ev: AttemptFailed) -> list:
        """The attempt failed through its worker's fault: the task runs again elsewhere, uncharged, and the
        worker gets no more of this job; once every live worker's disk is full, the job fails."""
        task = self.task_of(attempt)
        task.last_error = ev.error
        self.full_disks[attempt.worker] = ev.error.get("message", "?")
        actions: list = [Discard(attempt)] if self.writes_part(attempt) else []
        actions += self._exclude(attempt.worker, "its disk is full: " + self.full_disks[attempt.worker])
        return actions + self._retry(task) + self._unless_every_disk_full(ev.live, task)

    def _unless_every_disk_full(self, live: frozenset, task: Task) -> list:
        """Fail the job, blaming `task`, when every live worker's disk is full: none could run anything."""
        if not live or not live <= self.full_disks.keys():
            return []
        self._move(task, TaskState.FAILED)
        full = "; ".join(f"{worker}: {message}" for worker, message in sorted(self.full_disks.items()))
        return self._fail_job(task, {"message": f"could not run: every live worker is out of disk space ({full})",
                                     "traceback": ""})

    def _exclude(self, worker: str, reason: str) -> list:
        if worker in self.excluded:
            return []
        self.excluded[worker] = reason
        return [Exclude(worker, reason)]

    def _fail_job(self, task: Task, error: dict) -> list:
        self.done = True
        return self._cancel([a for a in self.attempts.values() if a.state is AttemptState.RUNNING]) + [JobFailed(task, error)]

    def _fetch_failed(self, ev: FetchFailed) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return []
        actions = self._lose_attempt(attempt)
        task = self.task_of(attempt)
        task.fetch_failures += 1
        source = self.maps[ev.map_index]
        served_by = self.attempts.get(ev.map_attempt)
        if served_by is not None:  # every failed fetch from a worker counts against it; past a few, the job drops it
            failures = self.fetch_failures_from
            failures[served_by.worker] += 1
            if failures[served_by.worker] >= MAX_FETCH_FAILURES_PER_WORKER:
                actions += self._exclude(served_by.worker,
                                         f"its map outputs could not be fetched {failures[served_by.worker]} times")
        if source.state is TaskState.SUCCEEDED and source.winner.id == ev.map_attempt:
            # Its worker could not serve it: take all that worker's outputs for lost, as its death would,
            # and make them again, on another worker where one can.
            self._remake_outputs_of(source.winner.worker, avoid=True)
        if task.fetch_failures >= 2 * self.max_attempts:
            self._move(task, TaskState.FAILED)
            error = {"message": f"could not fetch its input {task.fetch_failures} times; the last time: "
                                f"{ev.error.get('message', '?')}", "traceback": ""}
            return actions + self._fail_job(task, error)
        return actions

    def _lose_attempt(self, attempt: Attempt) -> list:
        """The attempt is gone through no fault of its task: kill it and let the task run again."""
        attempt.state = AttemptState.KILLED
        task = self.task_of(attempt)
        if task.state is TaskState.RUNNING and not task.running():
            self._move(task, TaskState.PENDING)
        return [Discard(attempt)] if self.writes_part(attempt) else []

    def _remake_outputs_of(self, worker: str, avoid: bool = False) -> None:
        """`avoid`: the worker is alive but could not serve its outputs; remake them on another if one can."""
        if self.reduces_done():
            return  # no reduce needs them any more
        for task in self.maps:
            if task.state is TaskState.SUCCEEDED and task.winner.worker == worker:
                if avoid:
                    task.failed_on |= {worker}
                self._move(task, TaskState.PENDING)
                task.winner = None  # its result stays, for its counters, until a new winner replaces it

    def _worker_lost(self, ev: WorkerLost) -> list:
        actions: list = []
        for attempt in self.running_on(ev.worker):
            actions += self._lose_attempt(attempt)
        self._remake_outputs_of(ev.worker)
        unfinished = next((t for t in self.maps + self.reduces if t.state is not TaskState.SUCCEEDED), None)
        if self.full_disks and unfinished is not None:
            actions += self._unless_every_disk_full(ev.live, unfinished)
        return actions

    def _stop(self, ev: JobAborted | JobCancelled) -> list:
        self.done = True
        return self._cancel([a for a in self.attempts.values() if a.state is AttemptState.RUNNING])

    def _attempt_lost(self, ev: AttemptLost) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        return self._lose_attempt(attempt) if attempt is not None else []
