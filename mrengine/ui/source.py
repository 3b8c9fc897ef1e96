"""Where the UI's data comes from: a live master (snapshots taken under its lock), or a history directory.

Both answer the same four questions with JSON-ready dicts: `cluster()`, `jobs()`, `job(id)` (a
`jobreport.job_report`) and `log(job_id, attempt_id)`. A master's snapshot copies plain values while
holding the lock and nothing more; rendering happens after the lock is released.
"""

from __future__ import annotations

import time

from .. import history
from ..errors import UsageError

REPORT_REUSE_SECONDS = 1.0


def job_summary(report: dict) -> dict:
    """The jobs page's row of a job report."""
    keys = ("id", "master", "name", "step", "state", "user", "job_file", "inputs", "output", "runner", "started",
            "finished", "elapsed", "counts")
    return {k: report.get(k) for k in keys} | {"error": (report.get("error") or {}).get("message")}


def find_log(report: dict, attempt_id: str) -> str | None:
    for task in report.get("tasks") or ():
        for attempt in task["attempts"]:
            if attempt["id"] == attempt_id:
                return attempt.get("log", "")
    return None


def exclusions(jobs) -> dict[str, list[str]]:
    """Why each worker is excluded, by worker id: the running master jobs that give it no more attempts."""
    reasons: dict[str, list[str]] = {}
    for job in jobs:
        if job.state != "running":
            continue
        for worker in sorted(job.tasks.excluded):
            reasons.setdefault(worker, []).append(
                f"{job.id}: fetches of its map outputs failed {job.tasks.fetch_failures_from[worker]} times")
    return reasons


def worker_state(alive: bool, excluded_by: list[str]) -> str:
    """alive, dead, or excluded (alive, but some running job gives it no more attempts)."""
    return "dead" if not alive else ("excluded" if excluded_by else "alive")


class HistorySource:
    """A history directory, re-read on each request (records are small and a history server is quiet)."""

    live = False

    def __init__(self, directory: str):
        self.directory = directory
        self.title = f"history {directory}"

    def cluster(self) -> dict:
        return {"workers": [], "live": False}

    def _records(self) -> list[dict]:
        return history.load_all(self.directory)

    def jobs(self) -> list[dict]:
        return [job_summary(r) for r in reversed(self._records())]

    def job(self, job_id: str) -> dict | None:
        matches = [r for r in self._records() if r["id"] == job_id or history.record_name(r)[:-5] == job_id]
        return matches[-1] if matches else None

    def log(self, job_id: str, attempt_id: str) -> str | None:
        report = self.job(job_id)
        return None if report is None else find_log(report, attempt_id)

    def kill(self, job_id: str) -> None:
        raise UsageError("a history server runs no jobs to kill")


class MasterSource:
    """A running master's state; finished jobs it no longer holds (or held before a restart) come from its history."""

    live = True

    def __init__(self, master, history_dir: str | None):
        self.master = master
        self._reports: dict[str, tuple[float, dict]] = {}  # job id -> (when taken, its report)
        self.history = HistorySource(history_dir) if history_dir else None
        self.title = f"master {master.address}"

    def cluster(self) -> dict:
        m = self.master
        with m.lock:
            now = time.monotonic()
            excluded = exclusions(m.scheduler.jobs.values())
            workers = [{"id": w.id, "host": w.host, "pid": w.pid, "shuffle": w.shuffle, "slots": w.slots,
                        "state": worker_state(w.alive, excluded.get(w.id)),
                        "excluded_by": excluded.get(w.id, []) if w.alive else [],
                        "last_heartbeat": round(now - w.last_seen, 2),
                        # as its last heartbeat said
                        "running": [[r.job_id, r.attempt_id] for r in w.running] if w.alive else []}
                       for w in m.registry.workers.values()]
        return {"workers": workers, "live": True, "master": m.address}

    def jobs(self) -> list[dict]:
        m = self.master
        with m.lock:
            now = time.monotonic()
            live = [self._summary(job, now) for job in m.scheduler.jobs.values()]
        held = {(j["master"], j["id"]) for j in live}
        old = [j for j in (self.history.jobs() if self.history else ()) if (j["master"], j["id"]) not in held]
        return list(reversed(live)) + old

    def _summary(self, job, now: float) -> dict:
        wall = time.time() - now
        spec = job.spec
        return {"id": job.id, "master": self.master.registry.instance, "name": spec.job_name, "step": spec.step,
                "state": job.state, "user": spec.user, "job_file": spec.job_file, "inputs": list(spec.inputs),
                "output": spec.output, "runner": "native",
                "started": round(wall + job.started, 3), "finished": round(wall + job.finished, 3) if job.finished else None,
                "elapsed": round((job.finished or now) - job.started, 3), "counts": job.tasks.counts(),
                "error": job.error and job.error.message}

    def job(self, job_id: str) -> dict | None:
        """The job's report; one taken under the lock less than REPORT_REUSE_SECONDS ago is reused, so a
        page and its /api twin, or several people watching, cost one report a second (docs/PERFORMANCE.md)."""
        now = time.monotonic()
        taken, report = self._reports.get(job_id, (0.0, None))
        if report is not None and now - taken < REPORT_REUSE_SECONDS:
            return report
        m = self.master
        with m.lock:
            job = m.scheduler.jobs.get(job_id)
            report = m.report(job) if job is not None else None
        if report is None:
            return self.history.job(job_id) if self.history else None
        self._reports = {k: v for k, v in self._reports.items() if now - v[0] < REPORT_REUSE_SECONDS}
        self._reports[job_id] = (now, report)
        return report

    def log(self, job_id: str, attempt_id: str) -> str | None:
        report = self.job(job_id)
        return None if report is None else find_log(report, attempt_id)

    def kill(self, job_id: str) -> None:
        """Kill a running job; a UsageError says why it cannot be."""
        self.master.kill(job_id, "the web UI")
