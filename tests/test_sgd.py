"""jobs/sgd.py end to end: accuracy against scikit-learn on the breast-cancer split in both modes, the
same model whatever the workers and splits, and a worker killed between rounds or in the middle of one.

Tolerances: runs with the same split size add the same partial sums in the same order, so their
models are identical bit for bit, whatever the number of workers or the failures survived. Other
split sizes add the rows in other groups: their weights agree to a relative 1e-9.
"""

import json
import re
import subprocess
import sys

import numpy as np
import psutil
import pytest

from sgd_support import (BREAST_CANCER, FIXTURE_JOBS, JOBS, ROOT, kill_worker, logs, mrengine_run, start_run, stop,
                         wait_for, worker_processes)

pytestmark = pytest.mark.slow

SGD = JOBS / "sgd.py"
GATED = FIXTURE_JOBS / "iterative_gated_sgd.py"
TRAIN, TEST = BREAST_CANCER / "train.csv", BREAST_CANCER / "test.csv"
L2 = 1 / 455  # scikit-learn's default C = 1 is l2 = 1 / (C * rows)
GRADIENT = ["-p", "epochs=30", "-p", "lr=1.0", "-p", f"l2={L2}", "-p", f"test={TEST}"]


def load(path):
    a = np.loadtxt(path, delimiter=",", skiprows=1)
    return a[:, :-1], a[:, -1]


@pytest.fixture(scope="module")
def sklearn_accuracy():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000)).fit(*load(TRAIN))
    return model.score(*load(TEST))


def train(out, *args, workers=2, split_size="16k", inputs=(TRAIN,)):
    proc = mrengine_run(SGD, inputs, out, "--split-size", split_size, *args, workers=workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "model.json").read_text()), proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Gradient mode on 2 workers, 16 KiB splits: the run the others are compared with."""
    return train(tmp_path_factory.mktemp("reference") / "out", *GRADIENT)


def test_gradient_mode_is_as_accurate_as_scikit_learn(reference, sklearn_accuracy):
    model, proc = reference
    assert abs(model["test"]["accuracy"] - sklearn_accuracy) <= 0.01
    out = proc.args[proc.args.index("-o") + 1]
    # The files say the same as the run: raw-feature weights reproduce the test accuracy ...
    x, y = load(TEST)
    w, b = np.array(model["weights"]), model["bias"]
    assert np.mean(((x @ w + b) > 0) == (y > 0.5)) == model["test"]["accuracy"]
    assert np.array_equal(np.load(f"{out}/model.npy"), np.append(w, b))
    # ... the log has one line per epoch and full-batch gradient descent lowers the loss every epoch ...
    log = np.loadtxt(f"{out}/log.csv", delimiter=",", skiprows=1)
    assert log.shape == (30, 4) and list(log[:, 0]) == list(range(1, 31))
    assert np.isclose(log[0, 1], np.log(2)) and np.all(np.diff(log[:, 1]) < 0)
    # ... and the loss was printed as it went.
    assert re.search(r"^epoch  30/30  loss 0\.0\d+  accuracy 0\.9\d+", proc.stdout, re.M)
    assert proc.stdout.count("loss") == 30 + 2


def test_average_mode_is_as_accurate_as_scikit_learn(tmp_path, sklearn_accuracy):
    model, proc = train(tmp_path / "out", "-p", "mode=average", "-p", "epochs=10", "-p", "lr=0.5", "-p", f"l2={L2}",
                        "-p", f"test={TEST}")
    assert model["mode"] == "average"
    assert abs(model["test"]["accuracy"] - sklearn_accuracy) <= 0.01


@pytest.mark.parametrize("workers,split_size", [(1, "16k"), (4, "16k"), (2, "64MiB"), (2, "4k")])
def test_gradient_mode_gives_the_same_model_whatever_the_workers_and_splits(tmp_path, reference, workers, split_size):
    model, _ = train(tmp_path / "out", *GRADIENT, workers=workers, split_size=split_size)
    expected = reference[0]
    if split_size == "16k":
        assert model == expected  # identical, bit for bit
    else:
        assert np.allclose(model["weights"], expected["weights"], rtol=1e-9, atol=0)
        assert np.isclose(model["bias"], expected["bias"], rtol=1e-9, atol=0)
        assert model["test"]["accuracy"] == expected["test"]["accuracy"]
        assert np.isclose(model["train"]["loss"], expected["train"]["loss"], rtol=1e-9, atol=0)


def test_a_worker_killed_between_rounds(tmp_path, reference):
    gate = tmp_path / "gate"
    gate.mkdir()
    proc = start_run(GATED, [TRAIN], tmp_path / "out", "--split-size", "16k", *GRADIENT, "-p", f"gate={gate}",
                     "-p", "pause_after=10", log_dir=tmp_path)
    try:
        wait_for(lambda: (gate / "between").exists(), 90, "round 10 to end", proc)
        workers = worker_processes(proc.pid)
        assert len(workers) == 2
        kill_worker(workers[0])
        (gate / "go").touch()
        proc.wait(120)
    finally:
        stop(proc)
    assert proc.returncode == 0, logs(tmp_path)
    assert json.loads((tmp_path / "out" / "model.json").read_text()) == reference[0]


def test_a_worker_killed_in_the_middle_of_a_round(tmp_path, reference):
    gate = tmp_path / "gate"
    gate.mkdir()
    proc = start_run(GATED, [TRAIN], tmp_path / "out", "--split-size", "16k", *GRADIENT, "-p", f"gate={gate}",
                     "-p", "hold_round=12", log_dir=tmp_path)
    try:
        held = wait_for(lambda: list(gate.glob("mid-*")), 90, "a map of round 12 to start", proc)
        worker = psutil.Process(int(held[0].name.split("-")[1])).parent()  # the held map's slot -> its worker
        assert "mrengine worker" in " ".join(worker.cmdline())
        kill_worker(worker)
        (gate / "go").touch()
        proc.wait(120)
    finally:
        stop(proc)
    assert proc.returncode == 0, logs(tmp_path)
    assert json.loads((tmp_path / "out" / "model.json").read_text()) == reference[0]
    maps, reduces, attempts = map(int, re.search(r"rounds: \d+ \((\d+) map, (\d+) reduce tasks; (\d+) attempts\)",
                                                 logs(tmp_path)).groups())
    assert attempts > maps + reduces  # the held map ran again elsewhere


def test_linreg_runs_on_the_directory_make_sgd_data_writes(tmp_path):
    """The generator's metadata file starts with `_`, so input listing skips it as Hadoop does."""
    data = tmp_path / "data"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sgd_data.py"), "synthetic", str(data), "--rows", "3000",
                    "--features", "3", "--files", "2", "--format", "csv", "--seed", "1"],
                   check=True, capture_output=True, timeout=60)
    assert (data / "_true_weights.json").exists()
    proc = mrengine_run(JOBS / "linreg.py", [data], tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    assert model["train"]["rows"] == 3000 and len(model["weights"]) == 3


def test_recovers_the_true_weights_of_synthetic_npy_data(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sgd_data.py"), "synthetic", str(data), "--rows", "60000",
                    "--features", "4", "--files", "3", "--format", "npy", "--seed", "5"],
                   check=True, capture_output=True, timeout=60)
    truth = json.loads((data / "_true_weights.json").read_text())
    model, _ = train(tmp_path / "out", "-p", "epochs=40", "-p", "lr=2.0", inputs=[f"{data}/*.npy"], split_size="100k")
    assert model["rows"] == 60000 and model["features"] == 4
    assert np.allclose(model["weights"], truth["weights"], atol=0.05)
    assert abs(model["bias"] - truth["bias"]) < 0.05
