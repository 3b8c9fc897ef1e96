"""The embedded cluster behind `mrengine run`: a master and N workers as local processes on loopback.

They are the same `mrengine master` / `mrengine worker` programs a multi-host cluster runs (the CLI's
own commands, with the same arguments), started in their own session (so a Ctrl-C reaches only the
driver, which then stops them in order) with a fresh random secret, and stopped and cleaned up when
the job ends, succeeds or fails. Should the driver itself be killed, they get SIGTERM from the kernel
(PR_SET_PDEATHSIG) and stop on their own.

They are forked from the driver rather than started as new interpreters: the driver has imported the
master's and the worker's modules once, before the fork, so a small job does not wait for three more
processes to import numpy, fsspec and mrengine (most of a 1 KB job's time otherwise). The fork comes
before the driver loads the job file, so nothing the job's code does at import time reaches them;
only the libraries a job file is written against (mrjob's job API, `job.import_job_libraries`) come
before it, so that each task process need not import them again.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time

import setproctitle

from .errors import ClusterError
from .procutil import die_with_parent

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
STOP_GRACE = 0.1
PORT_ATTEMPTS = 3  # master ports tried, should other processes take the free ones first
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # how the driver stops its forked master and workers, and how a user stops the driver
_PROGRAM_MODULES = ("mrengine.cli", "mrengine.master", "mrengine.worker")  # imported once, before the forks


class EmbeddedCluster:
    def __init__(self, workers: int, worker_timeout: float | None = None, verbose: bool = False, encrypt: bool = False,
                 ui: bool = False, history_dir: str | None = None):
        self.num_workers = workers
        self.encrypt = encrypt
        self.ui = ui  # serve the master's web UI on a free loopback port; its address then in `ui_url`
        self.history_dir = history_dir
        self.ui_url = ""
        self.worker_timeout = worker_timeout
        self.verbose = verbose
        self.procs: list[multiprocessing.Process] = []
        self.address = ""
        self.secret = b""
        self.tmp = ""

    def _spawn(self, name: str, args: list[str]) -> multiprocessing.Process:
        log = None if self.verbose else os.path.join(self.tmp, f"{name}.log")
        for stream in (sys.stdout, sys.stderr):  # or the child would write what the driver has buffered
            stream.flush()
        proc = multiprocessing.get_context("fork").Process(target=_run_program, args=(args, log), name=name)
        # Blocked across the fork: a stop signal that reached the child before it dropped the driver's
        # handlers would run them there (a KeyboardInterrupt's traceback on the user's terminal).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
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
        for module in _PROGRAM_MODULES:
            importlib.import_module(module)
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
        args += self._ui_args()
        master = self._spawn("master", args)
        for i in range(self.num_workers):
            self._spawn(f"worker-{i}", ["worker", "--master", self.address, "--secret-file", secret_file,
                                        "--work-dir", os.path.join(self.tmp, "work")])
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(ready):
            if not master.is_alive():
                log = self.log_tail("master")
                if "cannot listen" in log and not last:  # the port went to someone else in the meantime
                    self._stop_processes()
                    return False
                raise ClusterError(f"the master did not start (exit code {master.exitcode}):\n{log}")
            if time.monotonic() > deadline:
                raise ClusterError(f"the master did not start within {START_TIMEOUT:.0f}s")
            time.sleep(0.001)  # a small job waits for this: the master listens some 20 ms after its fork
        return True

    def _ui_args(self) -> list[str]:
        args = ["--history-dir", self.history_dir] if self.history_dir else []
        if self.ui:
            port = _free_port()
            self.ui_url = f"http://127.0.0.1:{port}/"
            args += ["--http", f"127.0.0.1:{port}"]
        return args

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
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        _wait_all(self.procs, STOP_GRACE)
        for p in self.procs:
            if p.is_alive() and p.name != "master":
                os.kill(p.pid, signal.SIGTERM)
        for p in _wait_all(self.procs, STOP_TIMEOUT):
            os.killpg(p.pid, signal.SIGKILL)
            p.join()
        self.procs = []

    def __exit__(self, *exc) -> None:
        self.stop()


def _run_program(args: list[str], log: str | None) -> None:
    """A forked child: `mrengine ARGS` in a session of its own, its output in the file `log`."""
    os.setsid()
    die_with_parent(signal.SIGTERM)
    setproctitle.setproctitle(" ".join([sys.executable, "-m", "mrengine", *args]))  # as `ps` would show it exec'd
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)  # the driver's handlers are the driver's
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # (blocked by _spawn) one sent already ends us now
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # and Python's own streams onto them: the driver's may not be its file descriptors (a test's capture)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.root.handlers.clear()  # the program configures its own logging
    from .cli import main

    main.main(args=args, prog_name="mrengine")  # exits with the program's status


def _wait_all(procs: list[multiprocessing.Process], timeout: float) -> list[multiprocessing.Process]:
    """Wait up to `timeout` for the processes to end; returns those still running."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0))
    return [p for p in procs if p.is_alive()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
