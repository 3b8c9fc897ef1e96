"""mrjob jobs, streaming jobs and the sort orders on the Spark runner: byte for byte the native output.

The jobs of steps run on one Spark session for the module (the `spark_runner` fixture, `SparkRunner.run`
as the CLI calls it); the streaming job goes through `mrengine streaming --runner spark` end to end."""

import importlib.util
import os

import pytest

from conftest import mrjob_unavailable, run_cli
from spark_helpers import RUN_TIMEOUT, assert_same_output, run_spark

pytestmark = pytest.mark.spark
HERE = os.path.dirname(__file__)
SPARK = ("--runner", "spark", "--spark-master", "local[2]")
SPLIT = "64k"
_MRJOB = importlib.util.find_spec("mrjob")
EXAMPLES = os.path.join(_MRJOB.submodule_search_locations[0], "examples") if _MRJOB else ""


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    with open(os.path.join(HERE, "..", "sample_data", "text", "kjv-new-testament.txt"), "rb") as f:
        (d / "nt.txt").write_bytes(f.read(200_000).rsplit(b"\n", 1)[0] + b"\n")
    return d / "nt.txt"


def native_then_spark(spark_runner, tmp_path, job, text):
    native = run_cli("run", job, text, "--workers", "2", "--split-size", SPLIT, "-o", tmp_path / "native",
                     timeout=RUN_TIMEOUT)
    assert native.returncode == 0, native.stderr
    run_spark(spark_runner, job, tmp_path / "spark", text, split_size=64 << 10)
    assert_same_output(tmp_path / "native", tmp_path / "spark")


@pytest.mark.skipif(mrjob_unavailable() is not None, reason=mrjob_unavailable() or "")
@pytest.mark.parametrize("example", ["mr_word_freq_count", "mr_next_word_stats", "mr_words_containing_u_freq_count"])
def test_mrjob_examples_on_spark(spark_runner, tmp_path, text, example):
    native_then_spark(spark_runner, tmp_path, os.path.join(EXAMPLES, f"{example}.py"), text)


@pytest.mark.parametrize("job", ["map_only.py", "sorted_values.py", "field_keys.py", "total_order_wc.py"])
def test_sort_orders_on_spark(spark_runner, tmp_path, text, job):
    native_then_spark(spark_runner, tmp_path, os.path.join(HERE, "jobs", job), text)


def test_streaming_on_spark(tmp_path, text, spark_submit_env):
    for name, extra, env in (("native", ("--workers", "2"), None), ("spark", SPARK, spark_submit_env)):
        proc = run_cli("streaming", *extra, "-input", text,
                       "-mapper", f"python3 {os.path.join(HERE, '..', 'jobs', 'streaming', 'wc_mapper.py')}",
                       "-reducer", f"python3 {os.path.join(HERE, '..', 'jobs', 'streaming', 'wc_reducer.py')}",
                       "-numReduceTasks", "3", "--split-size", SPLIT, "-output", tmp_path / name, timeout=RUN_TIMEOUT, env=env)
        assert proc.returncode == 0, proc.stderr
    assert_same_output(tmp_path / "native", tmp_path / "spark")
