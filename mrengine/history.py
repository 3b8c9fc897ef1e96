"""The job history: one JSON file per finished job in a directory, read back by `mrengine history` and `mrengine ui`.

The default directory is the user's state directory ($XDG_STATE_HOME/mrengine/history, else
~/.local/state/mrengine/history). A record is a job report (`jobreport.job_report`, as the JSON
text `report_json` makes); it is written to a temporary name and renamed, so a reader never sees
half a record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import re
import threading
import time
import uuid

from .errors import UsageError

log = logging.getLogger("mrengine.history")

REPORT = "_REPORT.json"  # the job's report beside its _SUCCESS
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "mrengine", "history")


def record_name(record: dict) -> str:
    """The record's file name: start time first, so names sort by time; the master's id keeps two masters apart."""
    return _SAFE.sub("_", f"{record['started']:017.3f}-{record['master']}-{record['id']}") + ".json"


def write(directory: str, record: dict) -> str:
    return write_text(directory, record_name(record), json.dumps(record, separators=(",", ":")).encode())


def write_text(directory: str, name: str, text: bytes | bytearray) -> str:
    """Write a record's JSON `text` as `name` in `directory`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def load_all(directory: str) -> list[dict]:
    """Every record in `directory`, oldest first; unreadable files are skipped (a record being copied in)."""
    records = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name)) as f:
                    records.append(json.load(f))
            except (OSError, ValueError):
                continue
    return records


def find(directory: str, job: str) -> dict:
    """The newest record whose job id (e.g. job0003) or file name is `job`."""
    matches = [r for r in load_all(directory) if job in (r["id"], record_name(r), record_name(r)[:-5])]
    if not matches:
        raise UsageError(f"no job {job!r} in the history at {directory} (`mrengine history --history-dir "
                         f"{directory}` lists the jobs it holds)")
    return matches[-1]


class Writer:
    """Writes records on a thread of its own, so a master holding its lock never waits on the disk."""

    def __init__(self, directory: str):
        self.directory = directory
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="history-writer", daemon=True).start()

    def submit(self, name: str, text: bytes | bytearray) -> None:
        """Write the record `text` (a job's report as JSON) as the file `name` (`record_name`)."""
        self._queue.put((name, text))

    def flush(self) -> None:
        self._queue.join()

    def _run(self) -> None:
        while True:
            name, text = self._queue.get()
            try:
                write_text(self.directory, name, text)
            except OSError as exc:
                log.warning("could not write the history record %s to %s: %s", name, self.directory, exc)
            finally:
                self._queue.task_done()


# ---------------------------------------------------------------- reading records back, for `mrengine history` and `logs`


def brief(record: dict) -> dict:
    return {k: record.get(k) for k in ("id", "master", "name", "step", "state", "runner", "started", "elapsed", "output")}


def one_line(record: dict) -> str:
    c = record["counts"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started"]))
    return (f"{record['id']:10} {when} {record['state']:9} {record['elapsed']:8.2f}s {record['name']} step "
            f"{record['step']} ({record['runner']}, {c['maps']} map, {c['reduces']} reduce) -> {record['output']}")


def describe(record: dict) -> list[str]:
    lines = [one_line(record)]
    if record.get("error"):
        lines.append(f"  error: {record['error'].get('message', '')}")
    lines += [f"  counter {g}/{n} = {v}" for g, n, v in record.get("counters") or ()]
    slow = [f"{t['kind']} {t['index']}" for t in record.get("tasks") or () if t.get("straggler")]
    if slow:
        lines.append(f"  stragglers: {', '.join(slow)}")
    for s in record.get("skew") or ():
        lines.append(f"  partition {s['partition']}: {s['bytes']} shuffle bytes, {s['records']} records")
    return lines


def attempt_logs(record: dict, task: str | None) -> list[tuple[str, str]]:
    """(attempt id, log) of every attempt with output, or of those whose id is `task` or starts with `task.`."""
    found = [(a["id"], a.get("log", "")) for t in record.get("tasks") or () for a in t["attempts"]
             if task is None or a["id"] == task or a["id"].startswith(task + ".")]
    if task is not None and not found:
        raise UsageError(f"job {record['id']} has no task or attempt {task!r} (attempt ids look like m00003.0, "
                         f"tasks like m00003)")
    return [(i, text) for i, text in found if text or task is not None]


# ---------------------------------------------------------------- runners without a master (Spark)


def record_step(run_step, spec, label: str, directory: str, runner: str):
    """`run_step(spec, label)` (a `StepSpec` in, a `StepStatus` out), leaving a history record of the
    step it ran, for runners without a master to write one."""
    started = time.time()
    record = {"id": f"{runner}-{uuid.uuid4().hex[:8]}", "master": runner, "name": spec.job_name, "step": spec.step,
              "user": spec.user, "job_file": spec.job_file, "inputs": list(spec.inputs), "output": spec.output,
              "runner": runner, "num_reducers": spec.num_reducers, "split_size": spec.split_size,
              "params": spec.params, "started": round(started, 3), "tasks": [], "skew": []}
    try:
        status = run_step(spec, label)
    except Exception as exc:
        _write_quietly(directory, {**record, "state": "failed", "error": {"message": str(exc)}, **_timing(started),
                                   "counts": {}, "counters": [], "manifest": None})
        raise
    report = status.report or {}  # the task table and skew, where the runner made a report
    _write_quietly(directory, {**record, "state": "succeeded", "error": None, **_timing(started),
                               "counts": dataclasses.asdict(status.counts), "counters": status.counters,
                               "manifest": status.manifest, "tasks": report.get("tasks", []),
                               "skew": report.get("skew", [])})
    return status


def _timing(started: float) -> dict:
    now = time.time()
    return {"finished": round(now, 3), "elapsed": round(now - started, 3)}


def _write_quietly(directory: str, record: dict) -> None:
    try:
        write(directory, record)
    except OSError as exc:
        log.warning("could not write the history record to %s: %s", directory, exc)
