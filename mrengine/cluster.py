"""The embedded cluster behind `mrengine run`: a master and N workers as local processes on loopback.

They are the same `mrengine master` / `mrengine worker` programs a multi-host cluster runs, started
in their own session (so a Ctrl-C reaches only the driver, which then stops them in order) with a
fresh random secret, and stopped and cleaned up when the job ends, succeeds or fails. Should the
driver itself be killed, they get SIGTERM from the kernel (PR_SET_PDEATHSIG) and stop on their own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .errors import ClusterError
from .procutil import die_with_parent

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
STOP_GRACE = 0.1
PORT_ATTEMPTS = 3  # master ports tried, should other processes take the free ones first


class EmbeddedCluster:
    def __init__(self, workers: int, worker_timeout: float | None = None, verbose: bool = False, encrypt: bool = False):
        self.num_workers = workers
        self.encrypt = encrypt
        self.worker_timeout = worker_timeout
        self.verbose = verbose
        self.procs: list[subprocess.Popen] = []
        self.address = ""
        self.secret = b""
        self.tmp = ""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = None if self.verbose else open(os.path.join(self.tmp, f"{name}.log"), "wb")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "mrengine", *args], stdin=subprocess.DEVNULL,
                                    stdout=log or None, stderr=subprocess.STDOUT if log else None, start_new_session=True,
                                    preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        finally:
            if log:
                log.close()
        proc.name = name
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "EmbeddedCluster":
        self.tmp = tempfile.mkdtemp(prefix="mrengine-")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.secret = secrets.token_hex(32).encode()  # as `read_secret` will read it back from the file
        secret_file = os.path.join(self.tmp, "secret")
        with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(self.secret)
        for attempt in range(PORT_ATTEMPTS):
            if self._start_on_free_port(secret_file, last=attempt == PORT_ATTEMPTS - 1):
                return

    def _start_on_free_port(self, secret_file: str, last: bool) -> bool:
        """Start the master and the workers; False if another process took the port first."""
        # The workers start with the master rather than after it, so they need its port beforehand: a
        # port free a moment ago (bound here and released; the workers retry until the master listens).
        self.address = f"127.0.0.1:{_free_port()}"
        ready = os.path.join(self.tmp, "master.address")
        args = ["master", "--bind", self.address, "--secret-file", secret_file, "--ready-file", ready]
        if self.worker_timeout:
            args += ["--worker-timeout", str(self.worker_timeout)]
        if self.encrypt:
            args.append("--encrypt")
        master = self._spawn("master", args)
        for i in range(self.num_workers):
            self._spawn(f"worker-{i}", ["worker", "--master", self.address, "--secret-file", secret_file,
                                        "--work-dir", os.path.join(self.tmp, "work")])
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(ready):
            if master.poll() is not None:
                log = self.log_tail("master")
                if "cannot listen" in log and not last:  # the port went to someone else in the meantime
                    self._stop_processes()
                    return False
                raise ClusterError(f"the master did not start (exit code {master.returncode}):\n{log}")
            if time.monotonic() > deadline:
                raise ClusterError(f"the master did not start within {START_TIMEOUT:.0f}s")
            time.sleep(0.01)
        return True

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.tmp, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        self._stop_processes()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_processes(self) -> None:
        # All at once: the cluster goes away with its driver, so the workers need not say goodbye,
        # and the master closing their connections wakes them from their long polls at once. A
        # worker still there after a moment (asleep between heartbeats) gets the second SIGTERM of
        # its two-stage shutdown: the job is over, nothing is left for its attempts to finish.
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        _wait_all(self.procs, STOP_GRACE)
        for p in self.procs:
            if p.poll() is None and p.name != "master":
                p.send_signal(signal.SIGTERM)
        for p in _wait_all(self.procs, STOP_TIMEOUT):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.procs = []

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[subprocess.Popen]:
    """Wait up to `timeout` for the processes to end; returns those still running."""
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            pass
    return [p for p in procs if p.poll() is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
