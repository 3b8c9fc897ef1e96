"""A job's report: one JSON-ready dict of what a master job did, for the web UI and the history; for
`_REPORT.json` the same as JSON text, made a task row at a time (`report_json`).

Built from the master's in-memory state while its lock is held, so it copies plain values only and does
no I/O; whoever renders or writes it does so afterwards, outside the lock. Times in the report are wall
clock (seconds since the epoch) and durations are seconds.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass

from .messages import ErrorInfo
from .tasks import BACKUP_FACTOR, MAP, AttemptState

STRAGGLER_MIN_SECONDS = 0.5  # a task this much slower than its phase's median is worth a flag at all
LOG_TAIL_CHARS = 2000  # of an attempt's log, quoted in a failure message


@dataclass(slots=True)  # one per finished attempt
class AttemptNote:
    """What the master hears about a finished attempt beyond the task state machine: when, its log, its error."""

    ended: float  # monotonic
    log: str = ""
    error: ErrorInfo | None = None


def with_log_tail(message: str, log_text: str) -> str:
    """A failure's message with the end of the attempt's output appended."""
    if not log_text.strip():
        return message
    tail = log_text[-LOG_TAIL_CHARS:]
    return f"{message}\n  the attempt's output ended with:\n{_indent(tail.rstrip())}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def job_report(master_id: str, job, now: float) -> dict:
    """The report of master job `job` (a master.MasterJob) as of monotonic time `now`."""
    received = _received(job)
    tasks = [_task_row(job, t, now, received) for t in job.tasks.maps + job.tasks.reduces]
    flag_stragglers(tasks)
    return {**_summary(master_id, job, now, received), "tasks": tasks}


def report_json(master_id: str, job, now: float, **changes) -> bytearray:
    """`job_report` with `changes`, as the (ASCII) JSON text of `_REPORT.json`. Its task rows are made and
    encoded one at a time, twice (the first pass finds each phase's median for the straggler flags),
    into one growing buffer, so that a job of many tasks never holds them all as objects, nor its text
    twice: at 15,000 tasks those were the master's peak memory (docs/PERFORMANCE.md, "Large R")."""
    received = _received(job)
    tasks = job.tasks.maps + job.tasks.reduces
    seconds = [task_seconds(_task_row(job, t, now, received)) for t in tasks]
    medians = phase_medians(zip((t.kind for t in tasks), seconds))
    head = json.dumps({**_summary(master_id, job, now, received), **changes}, indent=1, sort_keys=True, default=str)
    text = bytearray(head[:-2].encode())  # head ends "\n}"
    text += b',\n "tasks": ['
    for n, (task, took) in enumerate(zip(tasks, seconds)):
        row = _task_row(job, task, now, received)
        flag_straggler(row, took, medians.get(task.kind))
        text += b"\n  " if n == 0 else b",\n  "
        text += json.dumps(row, sort_keys=True, default=str).encode()
    text += b"\n ]\n}\n"
    return text


def _summary(master_id: str, job, now: float, received: list) -> dict:
    """All of the report but its task rows."""
    spec = job.spec
    end = job.finished or now
    return {
        "id": job.id, "master": master_id, "name": spec.job_name, "step": spec.step, "state": job.state,
        "user": spec.user, "job_file": spec.job_file, "inputs": list(spec.inputs), "output": spec.output,
        "runner": "native", "num_reducers": spec.num_reducers, "split_size": spec.split_size,
        "max_attempts": spec.max_attempts, "params": spec.params,
        "started": started(job), "finished": round(job.started_at + job.finished - job.started, 3) if job.finished else None,
        "elapsed": round(end - job.started, 3),
        "counts": job.tasks.counts(), "counters": job.counters(),
        "error": asdict(job.error) if job.error else None, "manifest": job.manifest,
        "skew": _skew(job, received),
    }


def started(job) -> float:
    """When the job started, as its reports and its history record's name say (wall clock)."""
    return round(job.started_at, 3)


def _received(job) -> list[tuple[int, int]]:
    """(records, bytes) the maps done so far sent each partition, by partition (the job's running totals)."""
    totals = job.partition_totals
    return [totals.of(p) if totals else (0, 0) for p in range(len(job.tasks.reduces))]


def _skew(job, received: list) -> list:
    """Bytes and records each reducer gets from the maps (shuffle input), the heaviest keys among them
    (sampled), and what it wrote."""
    rows = []
    for task in job.tasks.reduces:
        got_records, got_bytes = received[task.index]
        rows.append({"partition": task.index, "bytes": got_bytes, "records": got_records,
                     "top_keys": job.heavy_keys.top(task.index) if job.heavy_keys else [],
                     "output_bytes": task.result.bytes if task.result else None,
                     "output_records": task.result.records if task.result else None})
    return rows


def _task_row(job, task, now: float, received: list) -> dict:
    attempts = []
    for n, a in enumerate(task.attempts):
        note = job.notes.get(a.id)
        end = now if a.state is AttemptState.RUNNING else (a.finished or (note and note.ended))
        row = {"id": a.id, "worker": a.worker, "state": a.state.value, "backup": a.backup,
               "retry": n > 0 and not a.backup, "start": round(a.started - job.started, 3),
               "seconds": round(end - a.started, 3) if end else None, "log": note.log if note else ""}
        if note and note.error:
            row["error"], row["traceback"] = note.error.message, note.error.traceback
        if a is task.winner and task.result is not None:
            row.update(_io(task, received))
        attempts.append(row)
    return {"kind": task.kind, "index": task.index, "state": task.state.value, "failures": task.failures,
            "attempts": attempts, "straggler": False}


def _io(task, received: list) -> dict:
    """Records and bytes in and out of a task's winning attempt (a map's out: its output file's, or a
    map-only map's part file's)."""
    if task.kind == MAP:
        engine = Counter({n: v for g, n, v in task.result.counters if g == "mrengine"})
        got_records, got_bytes = engine["map_input_records"], engine["map_input_bytes"]
    else:
        got_records, got_bytes = received[task.index]
    return {"records_in": got_records, "bytes_in": got_bytes,
            "records_out": task.result.records, "bytes_out": task.result.bytes}


def task_seconds(row: dict) -> float | None:
    """How long a task has taken: its longest attempt that did not fail (a straggler outrun by its
    backup was killed, and was a straggler all the same)."""
    times = [a["seconds"] for a in row["attempts"] if a["seconds"] is not None and a["state"] != "failed"]
    return max(times) if times else None


def flag_stragglers(rows: list) -> None:
    """Flag tasks that took over BACKUP_FACTOR times their phase's median (the backup rule's own yardstick)."""
    seconds = [task_seconds(r) for r in rows]
    medians = phase_medians(zip((r["kind"] for r in rows), seconds))
    for row, took in zip(rows, seconds):
        flag_straggler(row, took, medians.get(row["kind"]))


def phase_medians(kinds_and_seconds) -> dict[str, float]:
    """The median seconds of each kind of task, from (kind, seconds or None) pairs; only of kinds with two timed tasks."""
    took: dict[str, list] = {}
    for kind, seconds in kinds_and_seconds:
        if seconds is not None:
            took.setdefault(kind, []).append(seconds)
    return {kind: statistics.median(times) for kind, times in took.items() if len(times) >= 2}


def flag_straggler(row: dict, seconds: float | None, median: float | None) -> None:
    if median is not None and seconds is not None and seconds > BACKUP_FACTOR * median \
            and seconds - median > STRAGGLER_MIN_SECONDS:
        row["straggler"] = True
        row["median"] = round(median, 3)
