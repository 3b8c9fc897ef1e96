"""The Spark runner on a real standalone cluster (a master and two workers on 127.0.0.1 and 127.0.0.2,
started from the pyspark package): the native runner's bytes, also when a speculative copy overtakes a
straggler and when a worker dies in the middle of the job; and a main(ctx) session whose cached
splits die with an executor. (`_SUCCESS` differs from the plain native
wordcount's only in the job's name and its counters, so the part files are compared.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from spark_cluster import StandaloneCluster, loopback_env
from conftest import JOBS, REPO, SAMPLE_TEXT as TEXT, TEST_JOBS, spark_session
from sgd_support import FIXTURE_JOBS, wait_for
from spark_helpers import RUN_TIMEOUT, files_of, run_native, run_spark
from test_iterative import splits_of, write_table

pytestmark = pytest.mark.spark

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


SPECULATION = {"spark.speculation": "true", "spark.speculation.interval": "100ms", "spark.speculation.quantile": "0.5",
               "spark.speculation.multiplier": "1.5", "spark.speculation.minTaskRuntime": "500ms"}


def test_wordcount_and_a_speculative_copy_that_overtakes_a_straggler_on_one_session(cluster, native_wordcount,
                                                                                    tmp_path, spark_session_jvm):
    """Both jobs on one Spark session on the cluster (one driver and its two executors, not two of each),
    speculation on: the word count gives the native bytes, and of the straggler job's reduce tasks the copy
    of the stalled one wins and leaves no stray files. `mrengine run --spark-master spark://...` end to
    end is the two tests below, which give the native bytes too."""
    marks = tmp_path / "marks"
    marks.mkdir()
    with spark_session(cluster.url, {"spark.ui.enabled": "false", **SPECULATION}, spark_session_jvm) as runner:
        run_spark(runner, WORDCOUNT, tmp_path / "wc", TEXT, split_size=1 << 20)
        assert parts_of(tmp_path / "wc") == parts_of(native_wordcount)
        summary = run_spark(runner, os.path.join(TEST_JOBS, "straggler.py"), tmp_path / "straggled", TEXT,
                            params={"marks": str(marks), "stall_seconds": STALL_SECONDS})
    # Two reduce tasks got past "s", and a third attempt did: the copy of the stalled one, which won.
    assert len([m for m in os.listdir(marks) if m.startswith("reached-")]) == 3
    assert "straggler/past s = 2" in "\n".join(summary.lines())  # counted once per partition, as the CLI prints it
    assert parts_of(tmp_path / "straggled") == parts_of(native_wordcount)  # and nothing else: no stray attempt files


def test_a_lost_executor_takes_its_cached_splits_with_it_and_they_are_read_again(cluster, tmp_path, spark_submit_env):
    """A main(ctx) session on the cluster: one worker (and its executor) dies between rounds 2 and 3.
    The splits whose parsed blocks that executor cached are read again in round 3, and only those."""
    data = tmp_path / "table.csv"
    table = write_table(data)
    splits = splits_of(data, 32 * 1024)
    gate = tmp_path / "gate"
    gate.mkdir()
    cmd = [sys.executable, "-m", "mrengine", "run", str(FIXTURE_JOBS / "iterative_counts.py"), str(data), "-o",
           str(tmp_path / "out"), "--split-size", "32k", "-p", f"gate={gate}", "-p", "pause_after=2", *spark_args(cluster)]
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=loopback_env(spark_submit_env))
    victim = None
    try:
        wait_for(lambda: (gate / "between").exists(), RUN_TIMEOUT, "round 2 to end", proc)
        # Round 1's map tasks parsed the splits, so each split's blocks are cached where its round-1 map ran.
        first_round = json.loads((gate / "between").read_text())[0]
        trees = [{p.pid for p in psutil.Process(w.pid).children(recursive=True)} for w in cluster.workers]
        victim = max(range(len(trees)), key=lambda i: sum(pid in trees[i] for _, pid in first_round))
        lost = sum(pid in trees[victim] for _, pid in first_round)
        cluster.kill_worker(victim)
        (gate / "go").touch()
        proc.wait(RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if victim is not None:
            cluster.restart_worker(victim)  # for the tests after this one
    assert proc.returncode == 0, (tmp_path / "stderr").read_text()
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())
    for rnd in rounds:
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)
    assert lost > 0
    assert [r["split_reads"] for r in rounds] == [splits, 0, lost, 0, 0]
    assert [r["split_cache_hits"] for r in rounds] == [0, splits, splits - lost, splits, splits]


def test_killing_a_worker_mid_job_still_gives_the_exact_output(cluster, native_wordcount, tmp_path, spark_submit_env):
    marks = tmp_path / "marks"
    marks.mkdir()
    cmd = [sys.executable, "-m", "mrengine", "run", os.path.join(TEST_JOBS, "slow_wordcount.py"), TEXT, "-o", str(tmp_path / "wc"),
           "--split-size", "256k", "-p", f"marks={marks}", "-p", "map_seconds=1", *spark_args(cluster)]
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=loopback_env(spark_submit_env))
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
