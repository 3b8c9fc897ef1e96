"""jobs/kmeans.py end to end on the Iris data: Lloyd's iterations against scikit-learn's KMeans from the
same initial centres, k-means++ seeding reproducible whatever the workers and splits, D^2 sampling
drawn with the right probabilities, bad parameters refused, and the Spark runner giving the same bytes.

Tolerances: scikit-learn adds the rows up in other groups (chunks of 256, threads), so its centres
and inertia agree to 1e-9, not bit for bit. Between mrengine runs there is none: k-means++ picks the
same rows whatever the splits, and Lloyd's sums are added in split order.
"""

import importlib.util
import json

import numpy as np
import pytest

from conftest import run_cli
from sgd_support import JOBS, ROOT, mrengine_run

pytestmark = pytest.mark.slow

KMEANS = JOBS / "kmeans.py"
IRIS = ROOT / "sample_data" / "iris" / "iris.csv"
SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]


def iris():
    return np.loadtxt(IRIS, delimiter=",", skiprows=1)[:, :4]


def cluster(out, *args, workers=2, split_size="2k"):
    proc = mrengine_run(KMEANS, [IRIS], out, "-p", "features=4", "--split-size", split_size, *args, workers=workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "centres.json").read_text()), proc


def sklearn_kmeans(init, iterations):
    from sklearn.cluster import KMeans

    return KMeans(len(init), init=init, n_init=1, max_iter=iterations, algorithm="lloyd", tol=0).fit(iris())


@pytest.mark.parametrize("iterations", [1, 3, 100])
def test_lloyd_iterations_match_scikit_learn_from_the_same_centres(tmp_path, iterations):
    init = iris()[[0, 1, 2]]  # three setosa rows: far from the final centres, so it takes several iterations
    np.savetxt(tmp_path / "init.csv", init, delimiter=",")
    model, proc = cluster(tmp_path / "out", "-p", f"init={tmp_path / 'init.csv'}", "-p", f"iterations={iterations}")
    expected = sklearn_kmeans(init, iterations)
    assert model["iterations"] == expected.n_iter_
    assert model["converged"] == (iterations == 100)
    assert np.allclose(model["centres"], expected.cluster_centers_, rtol=0, atol=1e-9)
    assert np.array_equal(np.load(tmp_path / "out" / "centres.npy"), np.array(model["centres"]))
    assert model["initial_centres"] == init.tolist()
    assert abs(model["inertia"] - expected.inertia_) <= 1e-9 * expected.inertia_
    assert model["sizes"] == np.bincount(expected.labels_, minlength=3).tolist()
    log = (tmp_path / "out" / "log.csv").read_text().splitlines()
    assert log[0] == "iteration,inertia,shift,sizes,seconds" and len(log) == 1 + model["iterations"]
    inertia = [float(line.split(",")[1]) for line in log[1:]]
    assert all(b <= a for a, b in zip(inertia, inertia[1:]))  # Lloyd's iterations never raise the inertia
    assert f"iteration {model['iterations']:3d}  inertia" in proc.stdout


def test_first_rows_seeding_is_the_input_s_first_k_rows(tmp_path):
    model, _ = cluster(tmp_path / "out", "-p", "init=first", "-p", "k=3")
    expected = sklearn_kmeans(iris()[:3], 100)
    assert model["initial_centres"] == iris()[:3].tolist()
    assert np.allclose(model["centres"], expected.cluster_centers_, rtol=0, atol=1e-9)


def test_kmeans_plus_plus_is_reproducible_whatever_the_workers_and_splits(tmp_path):
    runs = [cluster(tmp_path / f"run{i}", "-p", "k=3", "-p", "seed=7", workers=w, split_size=s)[0]
            for i, (w, s) in enumerate([(2, "2k"), (3, "2k"), (1, "64MiB"), (2, "1k")])]
    assert all(run["initial_centres"] == runs[0]["initial_centres"] for run in runs)
    rows = {tuple(r) for r in iris().tolist()}
    assert all(tuple(c) in rows for c in runs[0]["initial_centres"])  # k-means++ centres are input rows
    assert len({tuple(c) for c in runs[0]["initial_centres"]}) == 3
    # The same split size: the same bytes. Other split sizes add the rows up in other groups.
    assert (tmp_path / "run1" / "centres.npy").read_bytes() == (tmp_path / "run0" / "centres.npy").read_bytes()
    for run in runs[2:]:
        assert np.allclose(run["centres"], runs[0]["centres"], rtol=1e-12, atol=0)
    other_seed, _ = cluster(tmp_path / "other", "-p", "k=3", "-p", "seed=8")
    assert other_seed["initial_centres"] != runs[0]["initial_centres"]
    # From the same start, scikit-learn's Lloyd iterations end where ours do.
    expected = sklearn_kmeans(np.array(runs[0]["initial_centres"]), 100)
    assert np.allclose(runs[0]["centres"], expected.cluster_centers_, rtol=0, atol=1e-9)


def load_job_module():
    spec = importlib.util.spec_from_file_location("kmeans_job", KMEANS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_exponential_race_draws_rows_in_proportion_to_their_weights():
    kmeans = load_job_module()
    weights, draws = np.array([1.0, 2.0, 3.0, 4.0, 0.0]), 20_000
    ids = np.arange(len(weights), dtype=np.uint64)
    with np.errstate(divide="ignore"):
        wins = np.bincount([np.argmin(-np.log(kmeans.uniforms(seed, 0, ids)) / weights) for seed in range(draws)],
                           minlength=len(weights))
    expected = draws * weights / weights.sum()
    assert wins[4] == 0  # a row at distance 0 from a centre is never drawn again
    assert np.all(np.abs(wins[:4] - expected[:4]) <= 4 * np.sqrt(expected[:4]))  # within 4 standard deviations
    # The uniforms of a row depend on (seed, draw, row) only, not on which other rows are asked for.
    many = kmeans.uniforms(3, 1, np.arange(1000, dtype=np.uint64))
    assert np.array_equal(kmeans.uniforms(3, 1, np.arange(500, 1000, dtype=np.uint64)), many[500:])
    assert np.all((many > 0) & (many < 1)) and not np.array_equal(kmeans.uniforms(3, 2, np.arange(1000, dtype=np.uint64)), many)


@pytest.mark.parametrize("args,message", [
    (["-p", "k=0"], "-p k= must be an integer of at least 1, not 0"),
    (["-p", "k=151"], "k=151 centres for 150 rows"),
    (["-p", "features=9"], "-p features=9, but rows of the input have only 5 columns"),
    (["-p", "init=first", "-p", "iterations=-1"], "-p iterations= must be an integer of at least 0, not -1"),
    (["-p", "tol=-1"], "-p tol= must be a number >= 0, not -1"),
])
def test_bad_parameters_are_refused_in_one_line(tmp_path, args, message):
    proc = mrengine_run(KMEANS, [IRIS], tmp_path / "out", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_an_init_file_of_other_columns_is_refused(tmp_path):
    (tmp_path / "init.csv").write_text("1,2\n3,4\n")
    proc = mrengine_run(KMEANS, [IRIS], tmp_path / "out", "-p", "features=4", "-p", f"init={tmp_path / 'init.csv'}")
    assert proc.returncode != 0
    assert "must hold rows of 4 numbers (the features), not 2" in proc.stderr


@pytest.mark.spark
def test_kmeans_on_spark_writes_the_native_bytes(tmp_path, spark_submit_env):
    args = ["-p", "k=3", "-p", "seed=7", "-p", "features=4", "--split-size", "2k"]
    native = mrengine_run(KMEANS, [IRIS], tmp_path / "native", *args)
    assert native.returncode == 0, native.stderr
    spark = run_cli("run", KMEANS, IRIS, "-o", tmp_path / "spark", *args, *SPARK, timeout=600, env=spark_submit_env)
    assert spark.returncode == 0, spark.stderr
    for name in ("centres.npy", "centres.json"):
        assert (tmp_path / "spark" / name).read_bytes() == (tmp_path / "native" / name).read_bytes()
    strip = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "spark" / "log.csv") == strip(tmp_path / "native" / "log.csv")
