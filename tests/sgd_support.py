"""Helpers for the iterative-job, SGD and numeric-input tests: run the real CLI, find its processes."""

from __future__ import annotations

import contextlib
import os
import secrets
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


def mrengine_run(job, inputs, out, *args, workers=2, timeout=RUN_TIMEOUT, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m mrengine run JOB INPUTS -o OUT ARGS` on an embedded cluster; waits at most `timeout`;
    `env`: variables added to its environment."""
    cmd = [sys.executable, "-m", "mrengine", "run", str(job), *map(str, inputs), "-o", str(out),
           "--workers", str(workers), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def start_run(job, inputs, out, *args, workers=2, log_dir: Path, env: dict | None = None) -> subprocess.Popen:
    """The same, in the background, stdout/stderr to files in `log_dir` (read them with `logs`); `env`:
    variables added to its environment (and so to its embedded cluster's)."""
    cmd = [sys.executable, "-m", "mrengine", "run", str(job), *map(str, inputs), "-o", str(out),
           "--workers", str(workers), *map(str, args)]
    with open(log_dir / "stdout", "w") as so, open(log_dir / "stderr", "w") as se:
        return subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


@contextlib.contextmanager
def standalone_cluster(base: Path, worker_envs: list[dict]):
    """`mrengine master` and one single-slot `mrengine worker` per entry of `worker_envs` (variables
    added to that worker's environment) on 127.0.0.1, all registered; yields the `mrengine run`
    arguments that submit to it, and stops every process on leaving."""
    secret = base / "cluster.key"
    secret.write_text(secrets.token_hex(32))
    secret.chmod(0o600)
    ready, mrengine = base / "master.address", [sys.executable, "-m", "mrengine"]
    procs: list[subprocess.Popen] = []

    def start(name, args, env=None):
        with open(base / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen([*mrengine, *map(str, args)], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}))

    try:
        start("master", ["master", "--bind", "127.0.0.1:0", "--secret-file", secret, "--ready-file", ready])
        address = wait_for(lambda: ready.exists() and ready.read_text().strip(), 30, "the master to listen", procs[0])
        for i, env in enumerate(worker_envs):
            start(f"worker-{i}", ["worker", "--master", address, "--secret-file", secret, "--work-dir", base / f"work-{i}"], env)
        for i, proc in enumerate(procs[1:]):
            wait_for(lambda: " registered with " in (base / f"worker-{i}.log").read_text(), 30, f"worker {i} to register", proc)
        yield ["--master", address, "--secret-file", secret]
    finally:
        for proc in reversed(procs):
            stop(proc)


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
            if "mrengine worker" in " ".join(child.cmdline()):
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
