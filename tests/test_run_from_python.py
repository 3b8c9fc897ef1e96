"""`Runner.run` runs any job, a job of steps or a `main(ctx)` job, on every runner, from Python as
the CLI does: the native driver on an embedded cluster and the Spark runner give what the in-process
runner gives."""

import json

import pytest

from mrengine.cluster import EmbeddedCluster
from mrengine.driver import Driver, RunOptions
from mrengine.job import load_job
from mrengine.testing import run_job
from sgd_support import FIXTURE_JOBS
from test_iterative import write_table

pytestmark = pytest.mark.slow

MAIN_JOB = str(FIXTURE_JOBS / "iterative_counts.py")


def sums_of(rounds: list) -> list:
    return [(r["n"], r["sum"]) for r in rounds]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "table.csv"
    write_table(data)
    result = run_job(MAIN_JOB, [str(data)], split_size=32 * 1024)
    return data, sums_of(json.loads(result.files["rounds.json"]))


def check(summary, out, expected) -> None:
    assert summary.rounds == 5 and "rounds.json" in summary.files
    assert sums_of(json.loads((out / "rounds.json").read_text())) == expected


def test_native_driver_runs_a_main_job_from_python(tmp_path, reference):
    data, expected = reference
    with EmbeddedCluster(2) as cluster, Driver(cluster.address, cluster.secret) as driver:
        summary = driver.run(load_job(MAIN_JOB), [str(data)], str(tmp_path / "out"), RunOptions(split_size=32 * 1024))
    check(summary, tmp_path / "out", expected)


@pytest.mark.spark
def test_spark_runner_runs_a_main_job_from_python(tmp_path, reference):
    from mrengine.spark import SparkRunner

    data, expected = reference
    with SparkRunner("local[2]", {"spark.ui.enabled": "false"}) as spark:
        summary = spark.run(load_job(MAIN_JOB), [str(data)], str(tmp_path / "out"), RunOptions(split_size=32 * 1024))
    check(summary, tmp_path / "out", expected)
