"""The Spark runner on a real standalone cluster (a master and two workers on 127.0.0.1 and 127.0.0.2,
started from the pyspark package): the native runner's bytes, also when a speculative copy overtakes a
straggler and when a worker dies in the middle of the job. (`_SUCCESS` differs from the plain native
wordcount's only in the job's name and its counters, so the part files are compared.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from spark_cluster import StandaloneCluster, loopback_env
from conftest import JOBS, REPO, SAMPLE_TEXT as TEXT, TEST_JOBS, run_cli
from spark_helpers import RUN_TIMEOUT, files_of, run_native

WORDCOUNT = os.path.join(JOBS, "wordcount.py")
STALL_SECONDS = 240  # longer than the test may take: only a speculative copy lets the job end in time
MARKS_TIMEOUT = 240.0  # seconds for the slow job's maps to get going on both executors


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def native_wordcount(tmp_path_factory):
    out = tmp_path_factory.mktemp("native") / "wc"
    run_native(WORDCOUNT, out)
    return out


def parts_of(directory) -> dict[str, bytes]:
    """Every file but `_SUCCESS`, by name."""
    return {name: data for name, data in files_of(directory).items() if name != "_SUCCESS"}


def spark_args(cluster) -> list[str]:
    return ["--runner", "spark", "--spark-master", cluster.url, "--spark-conf", "spark.ui.enabled=false"]


def test_wordcount_on_a_standalone_cluster(cluster, native_wordcount, tmp_path):
    result = run_cli("run", WORDCOUNT, TEXT, "-o", tmp_path / "wc", "--split-size", "1m", *spark_args(cluster),
                     env=loopback_env(), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert parts_of(tmp_path / "wc") == parts_of(native_wordcount)


def test_a_speculative_copy_overtakes_a_straggler_and_leaves_no_strays(cluster, native_wordcount, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    speculation = ["spark.speculation=true", "spark.speculation.interval=100ms", "spark.speculation.quantile=0.5",
                   "spark.speculation.multiplier=1.5", "spark.speculation.minTaskRuntime=500ms"]
    result = run_cli("run", os.path.join(TEST_JOBS, "straggler.py"), TEXT, "-o", tmp_path / "wc",
                     "-p", f"marks={marks}", "-p", f"stall_seconds={STALL_SECONDS}", *spark_args(cluster),
                     *[arg for conf in speculation for arg in ("--spark-conf", conf)], env=loopback_env(), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    # Two reduce tasks got past "s", and a third attempt did: the copy of the stalled one, which won.
    assert len([m for m in os.listdir(marks) if m.startswith("reached-")]) == 3
    assert "straggler/past s = 2" in result.stderr  # counted once per partition
    assert parts_of(tmp_path / "wc") == parts_of(native_wordcount)  # and nothing else: no stray attempt files


def test_killing_a_worker_mid_job_still_gives_the_exact_output(cluster, native_wordcount, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cmd = [sys.executable, "-m", "mrengine", "run", os.path.join(TEST_JOBS, "slow_wordcount.py"), TEXT, "-o", str(tmp_path / "wc"),
           "--split-size", "256k", "-p", f"marks={marks}", "-p", "map_seconds=1", *spark_args(cluster)]
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=loopback_env())
    try:
        # Wait until map tasks have started in two Python workers (both executors), then kill worker 1 and
        # the executor it launched: its running maps and the map outputs it holds are lost.
        deadline = time.monotonic() + MARKS_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            started = os.listdir(marks)
            if len(started) >= 4 and len({name.split("-")[2] for name in started}) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        cluster.kill_worker(1)
        proc.wait(RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == 0, stderr
    tasks = next(ln for ln in stderr.splitlines() if ln.startswith("  tasks: "))
    assert tasks.startswith("  tasks: 18 map, 2 reduce (") and int(tasks.split("(")[1].split()[0]) > 20, tasks  # re-runs
    assert parts_of(tmp_path / "wc") == parts_of(native_wordcount)
