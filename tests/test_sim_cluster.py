"""scripts/sim_cluster.py: a real master under simulated workers prints its figures as one JSON line."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_a_tiny_simulated_job_reports_the_masters_figures():
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "sim_cluster.py"), "--tasks", "60",
                             "--workers", "6", "--reducers", "3", "--task-seconds", "0.05"],
                            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["tasks"], figures["maps"], figures["reduces"], figures["workers"]) == (63, 60, 3, 6)
    assert figures["heartbeats"] >= 63  # every attempt is reported finished by a heartbeat
    assert figures["wall_s"] >= figures["ideal_s"] > 0
    for name in ("master_cpu_ms_per_task", "master_kb_per_task", "heartbeat_p50_ms", "heartbeat_p99_ms",
                 "master_cpu_us_per_heartbeat", "submit_s", "schedule_overhead_s"):
        assert figures[name] >= 0, name
    assert figures["heartbeat_p99_ms"] >= figures["heartbeat_p50_ms"]


def test_bad_sizes_are_refused_in_one_line():
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "sim_cluster.py"), "--tasks", "0",
                             "--workers", "2"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 2 and "must be at least 1" in result.stderr and "Traceback" not in result.stderr
