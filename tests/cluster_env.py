"""A real mrengine cluster on simulated hosts (tests/netns.py), for the tests/test_cluster_*.py files.

    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path, worker_timeout=2)
        cluster.start_master()                  # on hosts[0]
        cluster.start_worker(hosts[1])
        driver = cluster.submit(["-p", "hold_map=a.txt"])
        ...
        assert cluster.finish(driver).returncode == 0
        assert_same_output(cluster.out, reference_output(tmp_path_factory))

Every process is a real `python -m mrengine ...` started through the host, so Hosts' teardown stops
whatever a test leaves running; `Cluster.stop()` stops them the polite way first. Every wait is
bounded. The job is tests/jobs/cluster_wc.py over the sample books plus a small first file `a.txt`,
cut in splits of 512 KiB (10 map tasks), with 3 reduce tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "tests" / "jobs" / "cluster_wc.py"
BOOKS = ROOT / "sample_data" / "text"
MRENGINE = [sys.executable, "-m", "mrengine"]
REDUCERS = 3
SPLIT_SIZE = "512k"
START_TIMEOUT = 30.0
JOB_TIMEOUT = 150.0
CMD_TIMEOUT = 30.0


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def make_input(base: Path) -> Path:
    """The books, and a small first file so that map task 0 is short and known."""
    data = base / "input"
    data.mkdir()
    (data / "a.txt").write_text("".join(f"first file line {i} of a few words\n" for i in range(300)))
    for book in sorted(BOOKS.glob("*.txt")):
        shutil.copy(book, data / book.name)
    return data


_reference: dict = {}


def reference_output(tmp_path_factory) -> Path:
    """The failure-free result: the same job on an embedded cluster on this host (made once)."""
    if "out" not in _reference:
        base = tmp_path_factory.mktemp("reference")
        out = base / "out"
        control = base / "control"
        control.mkdir()
        result = subprocess.run([*MRENGINE, "run", str(JOB), str(make_input(base)), "-o", str(out), "--workers", "3",
                                 "--reducers", str(REDUCERS), "--split-size", SPLIT_SIZE, "-p", f"control={control}"],
                                capture_output=True, text=True, timeout=JOB_TIMEOUT)
        assert result.returncode == 0, result.stderr
        record_time("0 embedded cluster on one host, no failure", result.stderr)
        _reference["out"] = out
    return _reference["out"]


def manifest(out: Path) -> dict:
    return json.loads((out / "_SUCCESS").read_text())


def assert_same_output(out: Path, reference: Path) -> None:
    """Byte for byte the same part files, and the same counters, as the failure-free run."""
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in reference.iterdir()), names
    for name in names:
        if name.startswith("part-"):
            assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs"
    got, want = manifest(out), manifest(reference)
    assert got["parts"] == want["parts"]
    assert got["counters"] == want["counters"]


def record_time(name: str, driver_stderr: str) -> None:
    """Append the job's wall time, as its driver reported it, to $MRENGINE_TIMES (see scripts/failure_times.py)."""
    path = os.environ.get("MRENGINE_TIMES")
    if path:
        (seconds,) = re.findall(r" succeeded in ([0-9.]+)s ->", driver_stderr)
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": name, "seconds": float(seconds)}) + "\n")


class Cluster:
    def __init__(self, hosts, base: Path, worker_timeout: float = 5.0, backup_after: float = 0.0):
        self.hosts = hosts
        self.base = base
        self.worker_timeout = worker_timeout
        self.backup_after = backup_after
        self.secret_file = base / "cluster.key"
        self.secret_file.write_text(secrets.token_hex(32))
        self.secret_file.chmod(0o600)
        self.logs = base / "logs"
        self.logs.mkdir()
        self.control = base / "control"
        self.control.mkdir()
        self.input = make_input(base)
        self.out = base / "out"
        self.master: subprocess.Popen | None = None
        self.address = ""
        self.workers: list[subprocess.Popen] = []

    # ------------------------------------------------------------ processes

    def _popen(self, host, name: str, args: list) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            return host.popen([*MRENGINE, *map(str, args)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def start_master(self, *extra, port: int = 0) -> str:
        ready = self.base / "master.address"
        ready.unlink(missing_ok=True)
        self.master = self._popen(self.hosts[0], "master", [
            "master", "--bind", f"{self.hosts[0].ip}:{port}", "--secret-file", self.secret_file,
            "--worker-timeout", self.worker_timeout, "--backup-after", self.backup_after, "--ready-file", ready, *extra])
        wait_for(lambda: ready.exists() or self.master.poll() is not None, START_TIMEOUT, "the master to listen")
        assert self.master.poll() is None, self.log("master")
        self.address = ready.read_text().strip()
        return self.address

    def start_worker(self, host, slots: int = 1, wait: bool = True) -> subprocess.Popen:
        name = f"worker-{len(self.workers)}"
        args = ["worker", "--master", self.address, "--secret-file", self.secret_file, "--slots", slots,
                "--work-dir", self.base / name]
        if not self.hosts.isolated:
            args += ["--bind", host.ip]  # distinct loopback addresses stand for the hosts
        proc = self._popen(host, name, args)
        proc.log_name, proc.host = name, host
        self.workers.append(proc)
        if wait:
            self.registrations(proc)
        return proc

    def start_workers(self, hosts, slots: int = 1) -> list[subprocess.Popen]:
        """A worker on each of `hosts`, started together; returns once all have registered."""
        procs = [self.start_worker(h, slots, wait=False) for h in hosts]
        for proc in procs:
            self.registrations(proc)
        return procs

    def registrations(self, proc, count: int = 1) -> list[str]:
        """The worker ids `proc` has registered as (waiting for the `count`-th), from its log."""
        def ids():
            found = [line.rsplit(" as ", 1)[1] for line in self.log(proc.log_name).splitlines() if " registered with " in line]
            assert proc.poll() is None, f"{proc.log_name} exited:\n{self.log(proc.log_name)}"
            return found if len(found) >= count else None
        return wait_for(ids, START_TIMEOUT, f"{proc.log_name} to register")

    def mrengine(self, *args, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
        """Run an mrengine command on hosts[0] and return its output."""
        return self.hosts[0].run([*MRENGINE, *map(str, args)], capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        result = self.mrengine("status", "--master", self.address, "--secret-file", self.secret_file, "--json", "--tasks")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def submit(self, params: list = (), out: Path | None = None, job: Path = JOB, options: list = ()) -> subprocess.Popen:
        """Start `mrengine run --master ...` of the test job (with `options`) on hosts[0]; `finish` waits for it."""
        args = ["run", job, self.input, "-o", out or self.out, "--master", self.address, "--secret-file", self.secret_file,
                "--reducers", REDUCERS, "--split-size", SPLIT_SIZE, "-p", f"control={self.control}", *options]
        for p in params:
            args += ["-p", p]
        return self.hosts[0].popen([*MRENGINE, *map(str, args)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, driver: subprocess.Popen, timeout: float = JOB_TIMEOUT) -> subprocess.CompletedProcess:
        try:
            out, err = driver.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            out, err = driver.communicate(timeout=CMD_TIMEOUT)
            raise AssertionError(f"the job did not finish within {timeout:.0f}s:\n{err}\n{self.log('master')}")
        return subprocess.CompletedProcess(driver.args, driver.returncode, out, err)

    def run_job(self, params: list = (), out: Path | None = None) -> subprocess.CompletedProcess:
        return self.finish(self.submit(params, out))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the workers, then the master (SIGINT is a Ctrl-C); each must exit 0 on its own."""
        for group in (self.workers, [self.master] if self.master else []):
            live = [p for p in group if p.poll() is None]
            for p in live:
                p.send_signal(signal.SIGCONT)  # a stopped process cannot handle the signal
                p.send_signal(sig)
            for p in live:
                try:
                    assert p.wait(START_TIMEOUT) == 0, f"exit code {p.returncode}"
                except (subprocess.TimeoutExpired, AssertionError) as exc:
                    raise AssertionError(f"{getattr(p, 'log_name', 'master')} did not stop cleanly on {sig!r}: {exc}\n"
                                         f"{self.log(getattr(p, 'log_name', 'master'))}") from None

    # ------------------------------------------------------------ what happened

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def held(self, kind: str, count: int = 1, timeout: float = 60) -> list[int]:
        """Worker pids of `count` attempts held by the hold_map / hold_reduce hooks."""
        def pids():
            found = [int(p.read_text()) for p in self.control.glob(f"held-{kind}.*") if not p.name.endswith(".tmp")]
            return found if len(found) >= count else None
        return wait_for(pids, timeout, f"{count} held {kind} attempt(s)")

    def release(self) -> None:
        (self.control / "release").touch()

    def job(self) -> dict:
        (job,) = self.status()["jobs"]
        return job

    def attempts(self, job: dict, kind: str = "map") -> list[dict]:
        return [a for t in job["tasks"] if t["kind"] == kind for a in t["attempts"]]

    def proc_of(self, pid: int) -> subprocess.Popen:
        (proc,) = [w for w in self.workers if w.pid == pid]
        return proc

    def worker_id(self, proc) -> str:
        return self.registrations(proc)[-1]


@contextlib.contextmanager
def tiny_disk(path: Path, size: str):
    """`path`, made a tmpfs of `size` (as mount's `size=`: "2m", "16k") while the block runs (needs root)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def loopback_cluster(base: Path, *master_args, preexec_fn=None, worker_preexec_fn=None):
    """A master (with `master_args`, started with `preexec_fn`) and one worker (started with
    `worker_preexec_fn`, logging to `base`/worker.log) as plain processes on 127.0.0.1; yields
    (master address, secret file, master log) and stops them on the way out."""
    secret_file = base / "cluster.key"
    secret_file.write_text(secrets.token_hex(32))
    ready, master_log = base / "master.address", base / "master.log"
    procs = []
    try:
        with open(master_log, "wb") as out:
            procs.append(subprocess.Popen([*MRENGINE, "master", "--bind", "127.0.0.1:0", "--secret-file", secret_file,
                                           "--ready-file", ready, *master_args], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, preexec_fn=preexec_fn))
        address = wait_for(lambda: ready.exists() and ready.read_text(), START_TIMEOUT, "the master to listen")
        with open(base / "worker.log", "wb") as out:
            procs.append(subprocess.Popen([*MRENGINE, "worker", "--master", address, "--secret-file", secret_file,
                                           "--work-dir", base / "work"], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, preexec_fn=worker_preexec_fn))
        yield address, secret_file, master_log
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(START_TIMEOUT)
