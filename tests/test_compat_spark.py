"""mrjob jobs, streaming jobs and the sort orders on the Spark runner: byte for byte the native output."""

import importlib.util
import os

import pytest

from conftest import mrjob_unavailable, run_cli
from spark_helpers import RUN_TIMEOUT, assert_same_output

pytestmark = pytest.mark.spark
HERE = os.path.dirname(__file__)
SPARK = ("--runner", "spark", "--spark-master", "local[2]")
_MRJOB = importlib.util.find_spec("mrjob")
EXAMPLES = os.path.join(_MRJOB.submodule_search_locations[0], "examples") if _MRJOB else ""


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    with open(os.path.join(HERE, "..", "sample_data", "text", "kjv-new-testament.txt"), "rb") as f:
        (d / "nt.txt").write_bytes(f.read(200_000).rsplit(b"\n", 1)[0] + b"\n")
    return d / "nt.txt"


def both(tmp_path, *args):
    for name, extra in (("native", ("--workers", "2")), ("spark", SPARK)):
        proc = run_cli(*args[:1], *extra, *args[1:], "-o" if args[0] == "run" else "-output", tmp_path / name,
                       timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, proc.stderr
    assert_same_output(tmp_path / "native", tmp_path / "spark")


@pytest.mark.skipif(mrjob_unavailable() is not None, reason=mrjob_unavailable() or "")
@pytest.mark.parametrize("example", ["mr_word_freq_count", "mr_next_word_stats", "mr_words_containing_u_freq_count"])
def test_mrjob_examples_on_spark(tmp_path, text, example):
    both(tmp_path, "run", os.path.join(EXAMPLES, f"{example}.py"), text, "--split-size", "64k")


@pytest.mark.parametrize("job", ["map_only.py", "sorted_values.py", "field_keys.py", "total_order_wc.py"])
def test_sort_orders_on_spark(tmp_path, text, job):
    both(tmp_path, "run", os.path.join(HERE, "jobs", job), text, "--split-size", "64k")


def test_streaming_on_spark(tmp_path, text):
    both(tmp_path, "streaming", "-input", text, "-mapper", f"python3 {os.path.join(HERE, '..', 'jobs', 'streaming', 'wc_mapper.py')}",
         "-reducer", f"python3 {os.path.join(HERE, '..', 'jobs', 'streaming', 'wc_reducer.py')}", "-numReduceTasks", "3",
         "--split-size", "64k")
