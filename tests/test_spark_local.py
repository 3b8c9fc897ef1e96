"""The Spark runner on local[2] gives the native runner's bytes: part files and `_SUCCESS` manifests
(counters included) are identical. One SparkContext serves the module, driven through the same
`SparkRunner.run` the CLI calls; one test goes through the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import JOBS, REPO, SAMPLE_TEXT as TEXT, TEST_JOBS, run_cli
from spark_helpers import RUN_TIMEOUT, assert_same_output, run_native, run_spark, submitted_setting, summary_without_time

pytestmark = pytest.mark.spark

SPLIT = "1m"  # several map tasks per file
SMALL = os.path.join(TEXT, "kjv-new-testament.txt")  # 1 MB: cut in 256 KiB splits, four map tasks


def test_wordcount_under_spark_submit_matches_native(tmp_path):
    """`spark-submit PATH/mrengine/__main__.py run ... --runner spark`: the run takes the JVM spark-submit
    started, with its --master, and leaves it for spark-submit to end."""
    import pyspark

    job = os.path.join(JOBS, "wordcount.py")
    run_native(job, tmp_path / "native")
    spark_submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    result = subprocess.run([spark_submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                             os.path.join(REPO, "mrengine", "__main__.py"), "run", job, TEXT, "-o", str(tmp_path / "spark"),
                             "--runner", "spark"], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert "job wordcount succeeded" in result.stdout  # spark-submit passes its Python's stderr on as its stdout
    assert_same_output(tmp_path / "native", tmp_path / "spark")


def test_wordcount_through_the_cli_matches_native(tmp_path):
    job = os.path.join(JOBS, "wordcount.py")
    native = run_native(job, tmp_path / "native")
    result = run_cli("run", job, TEXT, "-o", tmp_path / "spark", "--runner", "spark", "--spark-master", "local[2]",
                     "--spark-conf", "spark.ui.enabled=false", "--history-dir", tmp_path / "history",
                     timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert_same_output(tmp_path / "native", tmp_path / "spark")
    # The report beside _SUCCESS and the history record hold a task table and the skew, as a master job's.
    manifest = json.loads((tmp_path / "spark" / "_SUCCESS").read_text())
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "history").glob("*.json")]
    report = json.loads((tmp_path / "spark" / "_REPORT.json").read_text())
    for r in (report, record):
        assert r["runner"] == "spark" and r["counters"] == manifest["counters"]
        assert [(t["kind"], t["index"]) for t in r["tasks"]] == [("map", 0), ("map", 1), ("map", 2), ("reduce", 0),
                                                                ("reduce", 1)]
        maps_in = sum(t["attempts"][0]["records_in"] for t in r["tasks"] if t["kind"] == "map")
        assert maps_in == dict(((g, n), v) for g, n, v in manifest["counters"])["mrengine", "map_input_records"]
        assert all(t["attempts"][0]["seconds"] >= 0 for t in r["tasks"])
        assert [s["output_records"] for s in r["skew"]] == [manifest["parts"][f"part-{p:05d}"]["records"]
                                                           for p in range(2)]
        assert all(s["top_keys"] == [] for s in r["skew"])  # combined: each word is one record per map
        assert sum(s["records"] for s in r["skew"]) == sum(t["attempts"][0]["records_out"] for t in r["tasks"]
                                                           if t["kind"] == "map")
    assert summary_without_time(result.stderr) == summary_without_time(native.stderr)
    assert "[wordcount] map 3/3  reduce 2/2  workers 1" in result.stderr
    # Spark's own log stays out of the terminal.
    assert "WARN" not in result.stderr and "log4j" not in result.stderr and "Stage" not in result.stderr


@pytest.mark.parametrize("job", [
    os.path.join(JOBS, "wordcount_fast.py"),  # map_split
    os.path.join(TEST_JOBS, "tuple_keys.py"),
    os.path.join(TEST_JOBS, "custom_partitioner.py"),
    os.path.join(TEST_JOBS, "two_steps.py"),  # values in arrival order: the order must match too
    os.path.join(TEST_JOBS, "counters.py"),
], ids=lambda p: os.path.basename(p)[:-3])
def test_job_matches_native(spark_runner, tmp_path, job):
    native = run_native(job, tmp_path / "native", "--split-size", "256k", inputs=SMALL)
    summary = run_spark(spark_runner, job, tmp_path / "spark", SMALL, split_size=256 << 10)
    assert_same_output(tmp_path / "native", tmp_path / "spark")
    assert summary.lines()[1:] == summary_without_time(native.stderr)[1:]


def test_failed_attempts_are_retried_and_counted_once(spark_runner, tmp_path):
    job = os.path.join(TEST_JOBS, "flaky.py")
    for name in ("native-marks", "spark-marks"):
        (tmp_path / name).mkdir()
    native = run_native(job, tmp_path / "native", "--split-size", SPLIT, "-p", f"marks={tmp_path / 'native-marks'}")
    summary = run_spark(spark_runner, job, tmp_path / "spark", TEXT, split_size=1 << 20,
                        params={"marks": str(tmp_path / "spark-marks")})
    assert sorted(os.listdir(tmp_path / "spark-marks")) == ["map", "reduce"]  # both first attempts did fail
    assert summary.attempts >= summary.maps + summary.reduces + 2
    assert summary.counters["flaky", "map lines"] == 31102  # the lines of sample_data/text, once each
    assert_same_output(tmp_path / "native", tmp_path / "spark")  # no stray attempt files either
    assert summary.lines()[2:] == summary_without_time(native.stderr)[2:]  # attempts aside


def test_a_max_attempts_given_wins_over_spark_submits_max_failures_and_the_default_does_not(tmp_path, spark_submit_env):
    """spark-submit's `--conf spark.task.maxFailures=1` holds where the run gives no --max-attempts (a task of
    tests/jobs/flaky.py failing once fails the job); a --max-attempts given on the command line wins over it."""
    runs = {}
    with submitted_setting(spark_submit_env, "spark.task.maxFailures", "1"):
        for name, given in (("default", ()), ("given", ("--max-attempts", "2"))):
            (tmp_path / f"{name}-marks").mkdir()
            runs[name] = run_cli("run", os.path.join(TEST_JOBS, "flaky.py"), SMALL, "-o", tmp_path / name,
                                 "--split-size", "256k", "-p", f"marks={tmp_path / f'{name}-marks'}", *given,
                                 "--runner", "spark", "--spark-master", "local[2]", timeout=RUN_TIMEOUT,
                                 env=spark_submit_env)
    assert runs["default"].returncode != 0
    assert "failed on all 1 attempts" in runs["default"].stderr and "first attempt fails" in runs["default"].stderr
    assert not (tmp_path / "default" / "_SUCCESS").exists()
    assert runs["given"].returncode == 0, runs["given"].stderr
    assert (tmp_path / "given" / "_SUCCESS").exists()
