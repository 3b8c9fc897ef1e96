"""A real Spark standalone cluster for tests, started from the installed pyspark package itself.

``StandaloneCluster(tmp_dir, workers=2)`` runs ``spark-class org.apache.spark.deploy.master.Master``
on 127.0.0.1 and N ``...deploy.worker.Worker`` processes on 127.0.0.1, 127.0.0.2, ... (loopback
addresses all; each worker: 1 core, 1 GiB), each in its own
process group so that killing a worker also kills the executor it launched, as when a machine dies.
Everything binds to loopback (SPARK_LOCAL_IP); the master's REST server is off. Logs are files in
tmp_dir. As a context manager it stops every process it started, even on error.

    with StandaloneCluster(tmp_path) as cluster:
        run(..., "--spark-master", cluster.url)
        cluster.kill_worker(1)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import spark_jvm_setup

START_TIMEOUT = 120.0  # seconds for the master to listen or a worker to register (2 busy cores: JVMs start slowly)
STOP_TIMEOUT = 15.0


def spark_class() -> str:
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class")


def loopback_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_DAEMON_MEMORY="256m",
               SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false", SPARK_DAEMON_JAVA_OPTS=spark_jvm_setup.jvm_options())
    env.update(extra or {})
    return env


def _wait_for(path: str, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: the process exited with {proc.returncode} before {pattern!r}")
        time.sleep(0.2)
    raise RuntimeError(f"{path}: no {pattern!r} within {timeout:.0f}s")


class StandaloneCluster:
    def __init__(self, tmp_dir: str, workers: int = 2):
        self.tmp = str(tmp_dir)
        self.num_workers = workers
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.url = ""
        self.restarts = 0  # workers started again after a kill, for their log files' names

    @staticmethod
    def host(worker: int) -> str:
        # Each worker on its own loopback address: to Spark they are two hosts, so it may run a
        # speculative copy of a task on one while the original runs on the other.
        return f"127.0.0.{worker + 1}"

    def _spawn(self, name: str, args: list[str], host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
        log = os.path.join(self.tmp, f"{name}.log")
        # The executors' scratch (block managers, shuffle files) and temporary files (lz4-java's native
        # library, which a JVM deletes only as it exits normally) under tmp_dir too: an executor killed
        # with its worker cannot remove its own, which would stay in /tmp. A worker's executors
        # inherit its environment, and every JVM reads JAVA_TOOL_OPTIONS.
        env = loopback_env({"SPARK_LOCAL_IP": host, "SPARK_WORKER_DIR": os.path.join(self.tmp, f"{name}-work"),
                            "SPARK_LOCAL_DIRS": os.path.join(self.tmp, f"{name}-local"),
                            "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={self.tmp}"})
        with open(log, "wb") as out:
            proc = subprocess.Popen([spark_class(), *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
        return proc, log

    def _spawn_worker(self, index: int, attempt: int = 0) -> tuple[subprocess.Popen, str]:
        return self._spawn(f"worker{index}" + (f"-{attempt}" if attempt else ""),
                           ["org.apache.spark.deploy.worker.Worker", self.url, "--host", self.host(index), "--cores", "1",
                            "--memory", "1g", "--webui-port", "0"], self.host(index))

    def __enter__(self) -> "StandaloneCluster":
        try:
            self.master, log = self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                                      "--port", "0", "--webui-port", "0"])
            self.url = _wait_for(log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", self.master, START_TIMEOUT)[1]
            started = [self._spawn_worker(i) for i in range(self.num_workers)]
            self.workers = [proc for proc, _ in started]
            for proc, log in started:
                _wait_for(log, r"Successfully registered with master", proc, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker and everything it started (its executor and the executor's Python workers)."""
        proc = self.workers[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)

    def restart_worker(self, index: int) -> None:
        """Start a killed worker again (a new process, as a replaced machine) and wait until it registers."""
        self.restarts += 1
        proc, log = self._spawn_worker(index, self.restarts)
        self.workers[index] = proc
        _wait_for(log, r"Successfully registered with master", proc, START_TIMEOUT)

    def stop(self) -> None:
        procs = [p for p in [*self.workers, self.master] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
            try:  # the worker's executors share its process group and may outlive it briefly
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
