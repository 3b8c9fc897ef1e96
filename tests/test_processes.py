"""`mrengine run` leaves no process and no temporary directory behind: after success, after a
failure, when the driver itself is killed, and when the embedded master's port was taken."""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from mrengine import cluster
from mrengine.driver import Driver, RunOptions
from mrengine.job import load_job
from conftest import JOBS, SAMPLE_TEXT, TEST_JOBS, reference_wordcount, read_tsv

pytestmark = pytest.mark.slow


def _run_watching(args, env, kill_after=None):
    """Run the CLI, recording every descendant process seen while it runs."""
    proc = subprocess.Popen([sys.executable, "-m", "mrengine", *map(str, args)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    seen: dict[int, float] = {}
    deadline = time.monotonic() + 300
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.NoSuchProcess:
            pass
        if kill_after is not None and time.monotonic() - started > kill_after and len(seen) >= 5:
            proc.kill()
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode(), seen


def _survivors(seen: dict[int, float]) -> list:
    alive = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, p.cmdline()))
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_for_no_survivors(seen, seconds):
    deadline = time.monotonic() + seconds
    while _survivors(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _survivors(seen)


def test_nothing_survives_success(tmp_path, private_tmpdir):
    code, err, seen = _run_watching(["run", os.path.join(JOBS, "wordcount.py"), SAMPLE_TEXT, "-o", tmp_path / "out",
                                     "--workers", "2"], {"TMPDIR": str(private_tmpdir)})
    assert code == 0, err
    assert len(seen) >= 5  # master, 2 workers, their 2 slot processes
    assert _survivors(seen) == []
    assert os.listdir(private_tmpdir) == []


def test_nothing_survives_failure(tmp_path, private_tmpdir):
    code, err, seen = _run_watching(["run", os.path.join(TEST_JOBS, "failing_mapper.py"), SAMPLE_TEXT, "-o",
                                     tmp_path / "out", "--workers", "2"], {"TMPDIR": str(private_tmpdir)})
    assert code == 5, err
    assert _survivors(seen) == []
    assert os.listdir(private_tmpdir) == []


def test_cluster_stops_when_the_driver_is_killed(tmp_path, private_tmpdir):
    text = tmp_path / "in.txt"
    text.write_text("".join(f"line {i}\n" for i in range(400)))
    code, err, seen = _run_watching(["run", os.path.join(TEST_JOBS, "slow.py"), text, "-o", tmp_path / "out",
                                     "--workers", "2", "--split-size", "200"], {"TMPDIR": str(private_tmpdir)},
                                    kill_after=2.0)
    assert code == -signal.SIGKILL
    assert _wait_for_no_survivors(seen, 30) == []
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_the_embedded_cluster_moves_on_when_another_process_takes_its_port(tmp_path, private_tmpdir, monkeypatch):
    """The port picked for the master may be taken before the master binds it: the cluster starts
    again on another one, and the processes of the first try are gone."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        pick = cluster._free_port
        monkeypatch.setattr(cluster, "_free_port", lambda: next(ports, None) or pick())
        monkeypatch.setattr(cluster.tempfile, "tempdir", str(private_tmpdir))
        with cluster.EmbeddedCluster(2) as c, Driver(c.address, c.secret) as driver:
            assert c.address != f"127.0.0.1:{taken.getsockname()[1]}"
            driver.run(load_job(os.path.join(JOBS, "wordcount.py")), [SAMPLE_TEXT], str(tmp_path / "out"), RunOptions())
    texts = [os.path.join(SAMPLE_TEXT, name) for name in os.listdir(SAMPLE_TEXT)]
    assert {word: int(n) for word, n in read_tsv(tmp_path / "out").items()} == reference_wordcount(texts)
    assert _wait_for_no_survivors({p.pid: p.create_time() for p in psutil.Process().children(recursive=True)
                                   if p.pid not in before}, 10) == []
    assert os.listdir(private_tmpdir) == []
