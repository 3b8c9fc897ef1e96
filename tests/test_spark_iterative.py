"""`main(ctx)` jobs on the Spark runner (local[2]): jobs/sgd.py trains the native runner's model, rounds
read their splits once into Spark's cache, the broadcast reaches each Python worker once per round,
and a failing round names the user's line.

Tolerance: none. Both runners cut the same splits, and each round's reduce adds the same per-split
partial sums in split order, so the models are identical bit for bit (as between native runs on
different numbers of workers, tests/test_sgd.py).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mrengine.driver import RunOptions
from mrengine.errors import MrEngineError, TaskFailedError
from mrengine.iterative import run_main
from mrengine.job import load_job
from mrengine.tasks import DEFAULT_MAX_ATTEMPTS
from conftest import run_cli
from sgd_support import BREAST_CANCER, FIXTURE_JOBS, JOBS, mrengine_run
from spark_helpers import RUN_TIMEOUT, run_spark
from test_iterative import failing_job, splits_of, write_table

pytestmark = pytest.mark.spark

SGD = JOBS / "sgd.py"
TRAIN, TEST = BREAST_CANCER / "train.csv", BREAST_CANCER / "test.csv"
SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]


def summary_of(stderr: str) -> dict[str, str]:
    """The run's summary lines by their first word ("rounds:", "input:", ...), the time left out."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.startswith("  ")]
    return {ln.split()[0]: ln for ln in lines}


@pytest.mark.parametrize("mode, through_the_cli", [pytest.param("gradient", True, id="gradient-cli"),
                                                    pytest.param("average", False, id="average-session")])
def test_sgd_trains_the_native_model(spark_runner, spark_submit_env, tmp_path, mode, through_the_cli):
    """Gradient mode through `mrengine run --runner spark` end to end, average mode on the module's session."""
    params = {"mode": mode, "epochs": 12, "lr": 1.0, "l2": 1 / 455, "test": str(TEST)}
    args = ["--split-size", "16k", *(arg for name, value in params.items() for arg in ("-p", f"{name}={value}"))]
    native = mrengine_run(SGD, [TRAIN], tmp_path / "native", *args)
    assert native.returncode == 0, native.stderr
    if through_the_cli:
        spark = run_cli("run", SGD, TRAIN, "-o", tmp_path / "spark", *args, *SPARK, timeout=RUN_TIMEOUT,
                        env=spark_submit_env)
        assert spark.returncode == 0, spark.stderr
        assert "[sgd round 3] map 6/6  reduce 1/1" in spark.stderr
        spark_summary = summary_of(spark.stderr)
    else:
        summary = run_spark(spark_runner, SGD, tmp_path / "spark", TRAIN, split_size=16 << 10, params=params)
        spark_summary = summary_of("\n".join(summary.lines()))  # the lines the CLI prints
    assert (tmp_path / "spark" / "model.npy").read_bytes() == (tmp_path / "native" / "model.npy").read_bytes()
    assert (tmp_path / "spark" / "model.json").read_text() == (tmp_path / "native" / "model.json").read_text()
    model = json.loads((tmp_path / "spark" / "model.json").read_text())
    assert model["test"]["accuracy"] > 0.95
    # The per-epoch log matches but for its seconds column.
    strip = lambda path: [ln.rsplit(",", 1)[0] for ln in path.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "spark" / "log.csv") == strip(tmp_path / "native" / "log.csv")
    # The same rounds and tasks; every split read once, then served from Spark's cache.
    native_summary = summary_of(native.stderr)
    assert spark_summary["rounds:"].split(";")[0] == native_summary["rounds:"].split(";")[0]
    assert spark_summary["input:"].split("; broadcast")[0] == native_summary["input:"].split("; broadcast")[0]
    assert spark_summary["files:"] == native_summary["files:"]


@pytest.mark.parametrize("suffix,split_size", [(".csv", 32 * 1024), (".npy", 16 * 1024)])
def test_rounds_read_each_split_once_and_load_each_broadcast_once_per_python_worker(spark_runner, tmp_path, suffix,
                                                                                   split_size):
    data = tmp_path / f"table{suffix}"
    table = write_table(data)
    splits = splits_of(data, split_size)
    assert splits >= 5
    # After round 1 the driver overwrites the file: later rounds can only repeat round 1 from Spark's cache.
    opts = RunOptions(split_size=split_size, params={"scramble": True})
    summary = run_main(load_job(str(FIXTURE_JOBS / "iterative_counts.py")), [str(data)], str(tmp_path / "out"), opts,
                       spark_runner.run_step)
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert len(rounds) == summary.rounds == 5
    for rnd in rounds:
        assert rnd["n"] == len(table)
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)  # the right broadcast, every round
        assert len(rnd["ran"]) == splits
        assert rnd["broadcast_loads"] == len(rnd["processes"]) <= 2 < splits  # local[2]: two Python workers
    assert [r["split_reads"] for r in rounds] == [splits, 0, 0, 0, 0]
    assert [r["split_cache_hits"] for r in rounds] == [0] + [splits] * 4
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "rounds.json"]


def cli_error_of(spark_runner, job, out, inputs, **options) -> str:
    """What `mrengine run --runner spark` prints for the error the module's Spark session raises: the
    CLI's "mrengine: error: " line and, for a failed task, the user's traceback below it."""
    with pytest.raises(MrEngineError) as failed:
        run_spark(spark_runner, job, out, inputs, **options)
    traceback = failed.value.traceback if isinstance(failed.value, TaskFailedError) else ""
    assert failed.value.exit_code == 5, failed.value
    return "\n".join(filter(None, [f"mrengine: error: {failed.value.message}", traceback]))


@pytest.mark.parametrize("what,through_the_cli,expected", [
    ("task", True, ["mrengine: error: job failing round 2 failed: map task 0", "failed on all 1 attempts",
                    "ValueError: a huge first value", "(ctx.map_reduce at", "failing.py line 27)",
                    'failing.py", line 7, in rows']),
    ("main", False, ["mrengine: error: main raised RuntimeError: the driver gave up", "line 19, in main"]),
])
def test_a_failing_round_names_the_users_line_and_leaves_no_result(spark_runner, spark_submit_env, tmp_path, what,
                                                                   through_the_cli, expected):
    """A failed task through the CLI end to end (no Spark traceback before mrengine's message), a failing
    main(ctx) on the module's session."""
    job, good, bad = failing_job(tmp_path)
    out = tmp_path / "out"
    if through_the_cli:
        proc = run_cli("run", job, good, "-o", out, "-p", f"what={what}", "-p", f"bad={bad}", "--max-attempts", "1",
                       *SPARK, timeout=RUN_TIMEOUT, env=spark_submit_env)
        assert proc.returncode == 5, proc.stderr
        assert "Traceback" not in proc.stderr.split("mrengine: error:")[0]  # nothing from Spark before our message
        printed = proc.stderr
    else:
        printed = cli_error_of(spark_runner, job, out, good, params={"what": what, "bad": str(bad)})
    for text in expected:
        assert text in printed
    assert not out.exists() or os.listdir(out) == []


def test_a_split_that_does_not_parse_is_named(spark_runner, tmp_path):
    """On the module's session, whose tasks have the default attempts (Spark takes them when the session
    starts; --max-attempts reaching it is the failed task's case above)."""
    data = tmp_path / "table.csv"
    data.write_text("a,b,label\n1,2,0\n3,x,1\n")
    printed = cli_error_of(spark_runner, SGD, tmp_path / "out", data)
    assert (f"job sgd round 1 failed: map task 0 (split {data} bytes 0-22) failed on all {DEFAULT_MAX_ATTEMPTS} "
            "attempts") in printed
    assert "the line at byte offset 16 is not a row of numbers separated by ','" in printed
