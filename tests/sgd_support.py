"""Helpers for the iterative-job, SGD and numeric-input tests: run the real CLI, find its processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
FIXTURE_JOBS = Path(__file__).resolve().parent / "jobs"
BREAST_CANCER = ROOT / "sample_data" / "breast_cancer"
RUN_TIMEOUT = 180


def mrengine_run(job, inputs, out, *args, workers=2, timeout=RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m mrengine run JOB INPUTS -o OUT ARGS` on an embedded cluster; waits at most `timeout`."""
    cmd = [sys.executable, "-m", "mrengine", "run", str(job), *map(str, inputs), "-o", str(out),
           "--workers", str(workers), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_run(job, inputs, out, *args, workers=2, log_dir: Path) -> subprocess.Popen:
    """The same, in the background, stdout/stderr to files in `log_dir` (read them with `logs`)."""
    cmd = [sys.executable, "-m", "mrengine", "run", str(job), *map(str, inputs), "-o", str(out),
           "--workers", str(workers), *map(str, args)]
    with open(log_dir / "stdout", "w") as so, open(log_dir / "stderr", "w") as se:
        return subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL)


def logs(log_dir: Path) -> str:
    return (log_dir / "stdout").read_text() + "\n--- stderr ---\n" + (log_dir / "stderr").read_text()


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def worker_processes(driver_pid: int) -> list[psutil.Process]:
    """The embedded cluster's `mrengine worker` processes, children of the driver."""
    found = []
    for child in psutil.Process(driver_pid).children():
        try:
            if "worker" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def kill_worker(worker: psutil.Process, timeout: float = 10) -> None:
    """SIGKILL a worker process (not our child: it stays a zombie until the driver reaps it)."""
    worker.send_signal(signal.SIGKILL)

    def dead():
        try:
            return worker.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(dead, timeout, f"worker {worker.pid} to die")


def stop(proc: subprocess.Popen) -> None:
    """End a background run the test started (its embedded cluster stops with it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
