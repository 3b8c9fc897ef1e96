"""A real `mrengine master` stretches its workers' heartbeat interval as the cluster grows (as Hadoop's
JobTracker does), so that a few thousand workers do not saturate it; a small cluster keeps 0.5 s."""

import os
import secrets
import subprocess
import sys
import time

import pytest

from conftest import REPO
from mrengine import comm
from mrengine.master import HEARTBEATS_PER_SECOND
from mrengine.messages import HEARTBEAT_SECONDS, Heartbeat, Register, from_wire, to_wire

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def master(tmp_path):
    secret = secrets.token_hex(32).encode()
    (tmp_path / "secret").write_bytes(secret)
    ready = tmp_path / "address"
    proc = subprocess.Popen([sys.executable, "-m", "mrengine", "master", "--bind", "127.0.0.1:0", "--secret-file",
                             str(tmp_path / "secret"), "--ready-file", str(ready), "--worker-timeout", "60"],
                            env={**os.environ, "PYTHONPATH": REPO}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the master did not start"
            time.sleep(0.05)
        conn = comm.connect(ready.read_text(), secret, timeout=30)
        yield conn
        conn.close()
    finally:
        proc.terminate()
        proc.wait(30)


def _register(conn, count: int) -> list:
    return [from_wire(conn.request(to_wire(Register("sim", f"127.0.0.1:{10000 + i}", 1, 0)))) for i in range(count)]


def _interval(conn, registered) -> float:
    beat = Heartbeat(registered.worker_id, registered.master, free_slots=0)  # 0: answered at once, no long-poll
    return from_wire(conn.request(to_wire(beat))).heartbeat_seconds


def test_the_interval_grows_with_the_live_workers_past_a_hundred(master):
    workers = _register(master, 10)
    assert _interval(master, workers[0]) == HEARTBEAT_SECONDS
    workers += _register(master, 250)
    assert _interval(master, workers[0]) == pytest.approx(260 / HEARTBEATS_PER_SECOND)
