"""The task state machine of one job step: pure, no sockets, no files, no clocks of its own.

`JobTasks.handle(event)` takes what happened (a worker asks for work, an attempt finished or failed,
a reducer could not fetch a map output, a worker was lost) and returns the actions the master must
carry out (launch, cancel, commit, discard, finish the job). Legal task moves are in `TRANSITIONS`;
anything else is a bug and raises.

Rules, after Hadoop and the MapReduce paper: maps run first; reduces start when every map has
succeeded. A failed attempt is retried, preferably on another worker, until a task has failed
`max_attempts` times; then the job fails. Attempts lost with their worker, cancelled, or unable to
fetch their input are not the task's fault and do not count. A lost worker's finished map outputs are
re-made while any reduce still needs them. Counters come from the one attempt that won each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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


@dataclass
class Attempt:
    id: str
    kind: str
    index: int
    worker: str
    state: AttemptState = AttemptState.RUNNING
    started: float = 0.0


@dataclass
class Task:
    kind: str
    index: int
    state: TaskState = TaskState.PENDING
    attempts: list[Attempt] = field(default_factory=list)
    failures: int = 0
    failed_on: set = field(default_factory=set)
    winner: Attempt | None = None
    result: dict | None = None  # the winner's result: map output place, or reduce output stats
    last_error: dict | None = None

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


@dataclass
class AttemptFailed:
    attempt_id: str
    error: dict


@dataclass
class FetchFailed:
    attempt_id: str
    map_index: int


@dataclass
class WorkerLost:
    worker: str


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
class JobSucceeded:
    pass


@dataclass
class JobFailed:
    task: Task
    error: dict


class JobTasks:
    """`preferred[i]`: the worker map task i should run on if it can (it may hold the split's records in
    memory); another worker takes it only when that one is gone or `locality_wait` seconds have passed
    since the first worker asked for work."""

    def __init__(self, num_maps: int, num_reduces: int, max_attempts: int = 4, preferred: list | None = None,
                 locality_wait: float = 0.0):
        self.maps = [Task(MAP, i) for i in range(num_maps)]
        self.reduces = [Task(REDUCE, i) for i in range(num_reduces)]
        self.max_attempts = max_attempts
        self.attempts: dict[str, Attempt] = {}
        self.done = False
        self.preferred = list(preferred) if preferred else [None] * num_maps
        self.locality_wait = locality_wait
        self.first_ready: float | None = None

    # ------------------------------------------------------------ queries

    def task_of(self, attempt: Attempt) -> Task:
        return (self.maps if attempt.kind == MAP else self.reduces)[attempt.index]

    def maps_done(self) -> bool:
        return all(t.state is TaskState.SUCCEEDED for t in self.maps)

    def counts(self) -> dict:
        def n(tasks, state):
            return sum(t.state is state for t in tasks)

        return {
            "maps": len(self.maps), "maps_done": n(self.maps, TaskState.SUCCEEDED),
            "maps_running": n(self.maps, TaskState.RUNNING),
            "reduces": len(self.reduces), "reduces_done": n(self.reduces, TaskState.SUCCEEDED),
            "reduces_running": n(self.reduces, TaskState.RUNNING),
            "attempts": len(self.attempts),
        }

    def winners(self) -> list[Task]:
        return [t for t in self.maps + self.reduces if t.state is TaskState.SUCCEEDED]

    # ------------------------------------------------------------ the one entry point

    def handle(self, event: Any) -> list:
        if self.done:
            if isinstance(event, (AttemptSucceeded, AttemptFailed, FetchFailed)):
                attempt = self.attempts.get(event.attempt_id)
                if attempt and attempt.state is AttemptState.RUNNING:
                    attempt.state = AttemptState.KILLED
                    return [Discard(attempt)] if attempt.kind == REDUCE else []
            return []
        handler = {
            WorkerReady: self._worker_ready,
            AttemptSucceeded: self._succeeded,
            AttemptFailed: self._failed,
            FetchFailed: self._fetch_failed,
            WorkerLost: self._worker_lost,
        }[type(event)]
        return handler(event)

    def _worker_ready(self, ev: WorkerReady) -> list:
        if self.first_ready is None:
            self.first_ready = ev.now
        phase = self.maps if not self.maps_done() else self.reduces
        pending = [t for t in phase if t.state is TaskState.PENDING]
        allowed = [t for t in pending if ev.worker not in t.failed_on or ev.live <= t.failed_on]
        choice = self._local_choice(allowed, ev) if phase is self.maps else next(iter(allowed), None)
        if choice is None:
            return []
        kind = "m" if choice.kind == MAP else "r"
        attempt = Attempt(f"{kind}{choice.index:05d}.{len(choice.attempts)}", choice.kind, choice.index, ev.worker, started=ev.now)
        choice.attempts.append(attempt)
        self.attempts[attempt.id] = attempt
        choice.move(TaskState.RUNNING)
        return [Launch(attempt)]

    def _local_choice(self, allowed: list[Task], ev: WorkerReady) -> Task | None:
        """A map that prefers this worker; else one that prefers no live worker; else, after the wait, any."""
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

    def _succeeded(self, ev: AttemptSucceeded) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return []
        task = self.task_of(attempt)
        if task.state is not TaskState.RUNNING:
            attempt.state = AttemptState.KILLED  # another attempt already won
            return [Discard(attempt)] if attempt.kind == REDUCE else []
        attempt.state = AttemptState.SUCCEEDED
        task.winner, task.result = attempt, ev.result
        task.move(TaskState.SUCCEEDED)
        actions: list = []
        for other in task.running():  # backups that lost the race
            other.state = AttemptState.KILLED
            actions.append(Cancel(other))
        if attempt.kind == REDUCE:
            actions.append(Commit(attempt))
            if all(t.state is TaskState.SUCCEEDED for t in self.reduces):
                self.done = True
                actions.append(JobSucceeded())
        elif self.maps_done() and not self.reduces:
            self.done = True
            actions.append(JobSucceeded())
        return actions

    def _failed(self, ev: AttemptFailed) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return []
        attempt.state = AttemptState.FAILED
        task = self.task_of(attempt)
        task.failures += 1
        task.failed_on.add(attempt.worker)
        task.last_error = ev.error
        actions: list = [Discard(attempt)] if attempt.kind == REDUCE else []
        if task.failures >= self.max_attempts:
            task.move(TaskState.FAILED)
            return actions + self._fail_job(task, ev.error)
        if task.state is TaskState.RUNNING and not task.running():
            task.move(TaskState.PENDING)
        return actions

    def _fail_job(self, task: Task, error: dict) -> list:
        self.done = True
        actions: list = []
        for a in self.attempts.values():
            if a.state is AttemptState.RUNNING:
                a.state = AttemptState.KILLED
                actions.append(Cancel(a))
        return actions + [JobFailed(task, error)]

    def _fetch_failed(self, ev: FetchFailed) -> list:
        attempt = self._live_attempt(ev.attempt_id)
        if attempt is None:
            return []
        attempt.state = AttemptState.KILLED
        actions: list = [Discard(attempt)]
        task = self.task_of(attempt)
        if task.state is TaskState.RUNNING and not task.running():
            task.move(TaskState.PENDING)
        lost = self.maps[ev.map_index]
        if lost.state is TaskState.SUCCEEDED:
            lost.move(TaskState.PENDING)  # its output is gone or corrupt: make it again
            lost.winner = lost.result = None
        return actions

    def _worker_lost(self, ev: WorkerLost) -> list:
        actions: list = []
        for a in self.attempts.values():
            if a.worker == ev.worker and a.state is AttemptState.RUNNING:
                a.state = AttemptState.KILLED
                if a.kind == REDUCE:
                    actions.append(Discard(a))
                task = self.task_of(a)
                if task.state is TaskState.RUNNING and not task.running():
                    task.move(TaskState.PENDING)
        reduces_pending = any(t.state is not TaskState.SUCCEEDED for t in self.reduces)
        for task in self.maps:
            if task.state is TaskState.SUCCEEDED and task.winner.worker == ev.worker and reduces_pending:
                task.move(TaskState.PENDING)
                task.winner = task.result = None
        return actions
