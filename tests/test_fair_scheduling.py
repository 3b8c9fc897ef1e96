"""Fairness between jobs, end to end: a short job submitted behind a long one on the same cluster
finishes long before it, instead of waiting for the long one's tasks to drain (first-in first-out)."""

import json
import secrets
import subprocess
import sys
import time

import pytest

from conftest import TEST_JOBS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MRENGINE = [sys.executable, "-m", "mrengine"]
LONG_MAPS = 30  # one line each, sleeping 1 s: 15 s of map work on the cluster's 2 slots


def _start(args, log):
    return subprocess.Popen([*MRENGINE, *map(str, args)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _jobs(address, key) -> list[dict]:
    status = subprocess.run([*MRENGINE, "status", "--master", address, "--secret-file", key, "--json"],
                            capture_output=True, text=True, timeout=30)
    return json.loads(status.stdout)["jobs"] if status.returncode == 0 else []


def _maps_running(address, key) -> int:
    return sum(job["counts"]["maps_running"] for job in _jobs(address, key))


def test_a_short_job_overtakes_a_long_one(tmp_path):
    key = tmp_path / "cluster.key"
    key.write_text(secrets.token_hex(32))
    ready = tmp_path / "master.address"
    (tmp_path / "long.txt").write_text("".join(f"line{i:05d}\n" for i in range(LONG_MAPS)))  # 10 bytes a line
    (tmp_path / "short.txt").write_text("one short line\n")
    log = open(tmp_path / "cluster.log", "wb")
    procs = [_start(["master", "--bind", "127.0.0.1:0", "--secret-file", key, "--ready-file", ready], log)]
    try:
        _wait_for(ready.exists, 30, "the master")
        address = ready.read_text().strip()
        procs.append(_start(["worker", "--master", address, "--secret-file", key, "--slots", 2,
                             "--work-dir", tmp_path / "work"], log))

        def run(name, delay, *extra):
            args = ["run", f"{TEST_JOBS}/slow.py", tmp_path / f"{name}.txt", "-o", tmp_path / f"out-{name}", "--master",
                    address, "--secret-file", key, "-p", f"delay={delay}", "--reducers", 1, *extra]
            return subprocess.Popen([*MRENGINE, *map(str, args)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        long_job = run("long", 1.0, "--split-size", 10)
        _wait_for(lambda: _maps_running(address, key) == 2, 60, "the long job's maps to hold both slots")
        short_job = run("short", 0)
        short_out, short_err = short_job.communicate(timeout=120)
        (long_status,) = [job for job in _jobs(address, key) if job["name"] == "slow" and job["counts"]["maps"] > 1]
        long_out, long_err = long_job.communicate(timeout=120)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(15)
        log.close()
    assert short_job.returncode == 0, short_err
    assert long_job.returncode == 0, long_err
    # First-in first-out, the short job's map would start only once every long map had started.
    done = long_status["counts"]["maps_done"]
    assert long_status["state"] == "running" and done < LONG_MAPS * 2 // 3, (
        f"the short job finished only when {done} of the long job's {LONG_MAPS} maps were done:\n{short_err}")
    assert (tmp_path / "out-short" / "part-00000").read_text() == "line\t1\none\t1\nshort\t1\n"
