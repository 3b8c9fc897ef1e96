"""A real `mrengine master` stretches its workers' heartbeat interval as the cluster grows (as Hadoop's
JobTracker does), so that a few thousand workers do not saturate it; a small cluster keeps 0.5 s. Idle
workers' long-polls are parked, holding no thread, and answered with work the moment a job brings some."""

import os
import re
import secrets
import subprocess
import sys
import time

import pytest

from conftest import REPO
from mrengine import comm, protocol
from mrengine.master import HEARTBEATS_PER_SECOND
from mrengine.messages import HEARTBEAT_SECONDS, Heartbeat, Register, StepSpec, Submit, from_wire, to_wire

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def master_process(tmp_path):
    """A master process: yields (its pid, its address, the secret)."""
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
        yield proc.pid, ready.read_text(), secret
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def master(master_process):
    _, address, secret = master_process
    conn = comm.connect(address, secret, timeout=30)
    yield conn
    conn.close()


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


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


def test_idle_workers_long_polls_hold_no_thread_and_the_first_gets_a_new_jobs_task(master_process, master, tmp_path):
    pid, address, secret = master_process
    workers = _register(master, 600)  # an interval of 3 s: a long-poll is held for 1.5 s
    stalled = comm.connect(address, secret, timeout=30)
    stalled.sock.sendall(protocol.HEADER.pack(100) + b"x" * 10)  # a frame cut short, left so: it holds up no one
    polls = [comm.connect(address, secret, timeout=30) for _ in range(100)]
    for poll, worker in zip(polls, workers):
        poll.send(to_wire(Heartbeat(worker.worker_id, worker.master, free_slots=1)))
    assert _threads(pid) < 30  # not one per connection
    time.sleep(0.5)  # the heartbeats are parked
    (tmp_path / "in.txt").write_text("one line\n")
    spec = StepSpec(job_bytes=b"never unpickled", job_name="idle", step=0, inputs=[str(tmp_path / "in.txt")],
                    input_format="text", splittable=True, output=str(tmp_path / "out"), output_format="text",
                    num_reducers=0, split_size=1 << 20, params={}, storage_options={}, sort_buffer_bytes=1 << 20,
                    max_attempts=4)
    submitted = from_wire(master.request(to_wire(Submit(spec))))
    replies = [from_wire(poll.recv()) for poll in polls]
    given = [reply for reply in replies if reply.assign]
    assert [task.job_id for reply in given for task in reply.assign] == [submitted.job_id]
    assert list(given[0].jobs) == [submitted.job_id]  # with the job's code, once
    assert all(reply.polled for reply in replies)  # the others at their deadline, empty
    for conn in polls + [stalled]:
        conn.close()
