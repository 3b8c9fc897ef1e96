"""`mrengine run` leaves no process and no temporary directory behind: after success, after a
failure, and when the driver itself is killed."""

import os
import signal
import subprocess
import sys
import time

import psutil

from conftest import JOBS, SAMPLE_TEXT, TEST_JOBS


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
