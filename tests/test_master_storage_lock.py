"""The master makes no storage call while holding its lock: with an output store that takes seconds per
write, move and removal (tests/slowstore, an fsspec filesystem registered under `slow://` in every
process), heartbeats and status requests are answered within a second while the master commits."""

import os
import subprocess
import sys
import time

import pytest

from conftest import JOBS, REPO, run_cli
from mrengine import comm
from mrengine.driver import cluster_status, connect_master
from mrengine.messages import Heartbeat, Register, from_wire, to_wire

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SLOW_SECONDS = 2.0
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "tests", "slowstore"), REPO]),
       "SLOW_STORE_SECONDS": str(SLOW_SECONDS)}
REDUCERS = 3


def _start(args: list, log_path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "mrengine", *map(str, args)], env=ENV, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)


def _wait_for_file(path, proc, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, "the master did not start"
        time.sleep(0.05)
    return open(path).read()


def _timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def test_heartbeats_and_status_answer_while_the_master_commits_to_a_slow_store(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("".join(f"word{i % 97} other{i % 13}\n" for i in range(5000)))
    secret_file = tmp_path / "key"
    secret_file.write_bytes(b"a test secret")
    ready = tmp_path / "ready"
    master = _start(["master", "--bind", "127.0.0.1:0", "--secret-file", secret_file, "--ready-file", ready,
                     "--worker-timeout", "30"], tmp_path / "master.log")
    procs = [master]
    try:
        address = _wait_for_file(ready, master)
        procs.append(_start(["worker", "--master", address, "--secret-file", secret_file, "--slots", "2",
                             "--work-dir", tmp_path / "work"], tmp_path / "worker.log"))
        out = tmp_path / "out"
        run = _start(["run", os.path.join(JOBS, "wordcount.py"), text, "-o", f"slow://{out}", "--master", address,
                      "--secret-file", secret_file, "--reducers", REDUCERS], tmp_path / "run.log")
        procs.append(run)

        # A probe: a registered worker with no free slot, whose heartbeats the master must answer at once.
        secret = secret_file.read_bytes()
        probe = comm.connect(address, secret)
        registered = from_wire(probe.request(to_wire(Register("probe", "127.0.0.1:1", 1))))
        heartbeat = to_wire(Heartbeat(registered.worker_id, registered.master, free_slots=0))
        status_conn = connect_master(address, secret)
        slowest, committing = 0.0, 0
        while run.poll() is None:
            _, took_beat = _timed(lambda: probe.request(heartbeat))
            status, took_status = _timed(lambda: cluster_status(status_conn))
            slowest = max(slowest, took_beat, took_status)
            # every reduce has run: the master is committing parts or writing _SUCCESS
            committing += any(j.state == "running" and j.counts.reduces_done == REDUCERS for j in status.jobs)
            time.sleep(0.1)
        cli_status = run_cli("status", "--master", address, "--secret-file", secret_file)
        probe.close()
        status_conn.close()

        assert run.returncode == 0, (tmp_path / "run.log").read_text()
        assert sorted(os.listdir(out)) == ["_SUCCESS"] + [f"part-{p:05d}" for p in range(REDUCERS)]
        # The commits took seconds (REDUCERS moves, then the temporary files' removal and _SUCCESS) ...
        assert committing * 0.1 >= REDUCERS * SLOW_SECONDS * 0.5, f"only {committing} samples while committing"
        # ... and no answer waited for them.
        assert slowest < 1.0, f"a heartbeat or status request took {slowest:.2f}s"
        assert cli_status.returncode == 0 and "succeeded" in cli_status.stdout, cli_status.stderr
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
