"""jobs/sgd.py -p mode=async: logistic regression against a parameter server on the driver, with bounded
staleness. Accuracy against scikit-learn with 2 and 4 workers, a straggler, and a worker killed in
the middle of an epoch; the server's own log (paramserver.json) proves every step of every task was
applied exactly once.

The split size gives each worker one split, so every task trains at once (docs/SGD.md says why).
"""

import json
from collections import Counter

import numpy as np
import pytest

from mrengine.paramserver import read_checkpoint

from sgd_support import (
    BREAST_CANCER, JOBS, kill_worker, logs, mrengine_run, standalone_cluster, start_run, stop, wait_for, worker_processes,
)
from test_sgd import L2, sklearn_accuracy  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow

SGD = JOBS / "sgd.py"
TRAIN, TEST = BREAST_CANCER / "train.csv", BREAST_CANCER / "test.csv"
SPLIT_SIZE = {2: "64k", 4: "25k"}  # one split per worker
ASYNC = ["-p", "mode=async", "-p", "epochs=10", "-p", "lr=0.5", "-p", f"l2={L2}", "-p", f"test={TEST}"]
LOSS_BOUND = 0.075  # docs/SGD.md: async runs end below it, failures survived or not


def train(out, *args, workers=2):
    proc = mrengine_run(SGD, [TRAIN], out, "--split-size", SPLIT_SIZE[workers], *ASYNC, *args, workers=workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "model.json").read_text()), proc


def applied_exactly_once(out, epochs=10, batch=16):
    """The server's log holds each (task, step) once, and every step of every task: 0 .. epochs x
    batches of its split - 1, in order."""
    record = json.loads((out / "paramserver.json").read_text())
    steps = Counter((task, step) for task, step, _, _ in record["applied"])
    assert max(steps.values()) == 1, "an update was applied twice"
    assert record["version"] == record["applied_count"] == len(steps)
    per_task = Counter(task for task, _ in steps)
    for task, count in per_task.items():
        assert sorted(step for t, step in steps if t == task) == list(range(count))
        assert count == record["clocks"][str(task)] and count % epochs == 0
    rows = json.loads((out / "model.json").read_text())["rows"]
    assert sum(per_task.values()) >= epochs * -(-rows // batch)  # every row's batches, split by split
    return record


@pytest.mark.parametrize("workers", [2, 4])
def test_async_mode_is_as_accurate_as_scikit_learn(tmp_path, sklearn_accuracy, workers):  # noqa: F811
    model, proc = train(tmp_path / "out", "-p", "staleness=4", workers=workers)
    assert model["mode"] == "async"
    assert abs(model["test"]["accuracy"] - sklearn_accuracy) <= 0.01
    assert model["train"]["loss"] < LOSS_BOUND
    record = applied_exactly_once(tmp_path / "out")
    assert len(record["clocks"]) == workers and record["duplicates_dropped"] == 0
    # checkpoints every 100 updates: parameters, version and clocks
    checkpoints = sorted((tmp_path / "out" / "checkpoints").glob("params-*.npz"))
    assert len(checkpoints) == record["version"] // 100
    with np.load(checkpoints[-1]) as z:
        meta = json.loads(str(z["_meta"]))
        assert meta["version"] == 100 * len(checkpoints) and z["w"].shape == (30,)
    log = np.loadtxt(tmp_path / "out" / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
    assert list(log[:, 0]) == list(range(1, 11)) and log[-1, 1] < log[0, 1]
    assert "paramserver/applied" in proc.stderr


def test_async_mode_converges_with_a_straggler_worker(tmp_path):
    # scripts/bench_async_sgd.py times this run against gradient mode's on the same cluster
    with standalone_cluster(tmp_path, [{"SGD_SLOW_FACTOR": "3"}, {}]) as cluster:
        model, proc = train(tmp_path / "out", "-p", "staleness=4", *cluster)
    assert model["train"]["loss"] < LOSS_BOUND
    record = applied_exactly_once(tmp_path / "out")
    assert len(record["clocks"]) == 2 and record["staleness_waits"] > 0  # the fast task was held back


def test_staleness_zero_and_unbounded_both_train(tmp_path):
    for staleness in ("0", "inf"):
        model, _ = train(tmp_path / staleness, "-p", f"staleness={staleness}")
        assert model["train"]["loss"] < LOSS_BOUND
        record = applied_exactly_once(tmp_path / staleness)
        assert record["staleness"] == (0 if staleness == "0" else None)


def test_a_worker_killed_in_the_middle_of_an_epoch(tmp_path):
    out = tmp_path / "out"
    # both workers slowed twentyfold, so the round lasts seconds and the kill lands mid-epoch
    proc = start_run(SGD, [TRAIN], out, "--split-size", "64k", *ASYNC, "-p", "staleness=4", "-p", "checkpoint_every=20",
                     log_dir=tmp_path, env={"SGD_SLOW_FACTOR": "20"})
    try:
        wait_for(lambda: list(out.glob("_temporary/*/files/checkpoints/params-*.npz")), 90, "a first checkpoint", proc)
        workers = worker_processes(proc.pid)
        assert len(workers) == 2
        kill_worker(workers[0])
        proc.wait(180)
    finally:
        stop(proc)
    assert proc.returncode == 0, logs(tmp_path)
    model = json.loads((out / "model.json").read_text())
    assert model["train"]["loss"] < LOSS_BOUND
    record = applied_exactly_once(out)
    attempts = {task: {a for t, _, a, _ in record["applied"] if t == task} for task in (0, 1)}
    assert max(len(a) for a in attempts.values()) >= 2, "no task was resumed by a second attempt"


def test_a_run_resumed_from_a_checkpoint_of_an_earlier_one(tmp_path, sklearn_accuracy):  # noqa: F811
    train(tmp_path / "first", "-p", "staleness=4", "-p", "epochs=4")
    first = applied_exactly_once(tmp_path / "first", epochs=4)
    checkpoint = tmp_path / "first" / "checkpoints" / "params-00000100.npz"
    _, meta = read_checkpoint(str(checkpoint))
    assert meta["version"] == 100 and sum(meta["clocks"].values()) == 100
    model, proc = train(tmp_path / "resumed", "-p", "staleness=4", "-p", f"resume={checkpoint}")  # to 10 epochs
    assert f"resuming from {checkpoint}: 100 updates applied" in proc.stdout
    assert abs(model["test"]["accuracy"] - sklearn_accuracy) <= 0.01
    assert model["train"]["loss"] < LOSS_BOUND
    record = json.loads((tmp_path / "resumed" / "paramserver.json").read_text())
    assert record["resumed_from"] == {"version": 100, "clocks": meta["clocks"]}
    steps = Counter((task, step) for task, step, _, _ in record["applied"])
    assert max(steps.values()) == 1, "an update was applied twice"
    assert record["version"] == 100 + len(steps)
    for task, clock in record["clocks"].items():  # each task went on from its checkpointed step to its 10th epoch
        assert clock == first["clocks"][task] * 10 // 4
        assert sorted(step for t, step in steps if t == int(task)) == list(range(meta["clocks"][task], clock))
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())[0] == "params-00000200.npz"
    # other splits cut other batches: the checkpoint's steps would mean other rows
    proc = mrengine_run(SGD, [TRAIN], tmp_path / "out", "--split-size", SPLIT_SIZE[4], *ASYNC, "-p", f"resume={checkpoint}")
    assert proc.returncode != 0
    assert "'splits': 2" in proc.stderr and "'splits': 4" in proc.stderr and "same input, --split-size" in proc.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.spark
def test_the_spark_runner_refuses_async_mode_in_one_paragraph(tmp_path, spark_submit_env):
    proc = mrengine_run(SGD, [TRAIN], tmp_path / "out", "--runner", "spark", "-p", "mode=async", timeout=300,
                        env=spark_submit_env)
    assert proc.returncode == 2
    assert "parameter server" in proc.stderr and "SparkRunner" in proc.stderr and "gradient or average" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "rows," not in proc.stdout, proc.stdout  # refused before the statistics round ("N rows, F features")
    assert not (tmp_path / "out" / "_SUCCESS").exists()
