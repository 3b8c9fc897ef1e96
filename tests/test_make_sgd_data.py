"""Tests for scripts/make_sgd_data.py and the committed breast-cancer split (no scikit-learn)."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BC_DIR = ROOT / "sample_data" / "breast_cancer"

_spec = importlib.util.spec_from_file_location("make_sgd_data", ROOT / "scripts" / "make_sgd_data.py")
msd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(msd)


def load(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


# --------------------------------------------------------------------------- synthetic

@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_synthetic_layout(tmp_path, fmt):
    assert msd.main(["synthetic", str(tmp_path), "--rows", "1001", "--features", "5",
                     "--files", "2", "--format", fmt, "--seed", "3"]) == 0
    meta = json.loads((tmp_path / "_true_weights.json").read_text())
    assert meta["features"] == 5 and len(meta["weights"]) == 5
    assert isinstance(meta["bias"], float)
    assert meta["columns"] == ["x0", "x1", "x2", "x3", "x4", "label"]
    assert [f["rows"] for f in meta["files"]] == [501, 500]
    parts = sorted(tmp_path.glob(f"part-*.{fmt}"))
    assert [p.name for p in parts] == [f"part-00000.{fmt}", f"part-00001.{fmt}"]
    for part, n in zip(parts, (501, 500)):
        if fmt == "csv":
            first = part.read_text().split("\n", 1)[0]
            assert first == "x0,x1,x2,x3,x4,label"
        else:
            assert np.load(part).dtype == np.float32
        data = load(part)
        assert data.shape == (n, 6)
        assert set(np.unique(data[:, -1])) == {0.0, 1.0}
        assert abs(data[:, :-1].mean()) < 0.1 and abs(data[:, :-1].std() - 1) < 0.1


def test_synthetic_csv_equals_npy_and_is_deterministic(tmp_path):
    args = dict(rows=3000, features=4, files=2, seed=7)
    msd.write_synthetic(str(tmp_path / "a"), fmt="npy", **args)
    msd.write_synthetic(str(tmp_path / "b"), fmt="npy", **args)
    msd.write_synthetic(str(tmp_path / "c"), fmt="csv", **args)
    msd.write_synthetic(str(tmp_path / "d"), fmt="npy", **{**args, "seed": 8})
    for k in range(2):
        name = f"part-{k:05d}"
        a = (tmp_path / "a" / f"{name}.npy").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.npy").read_bytes()
        assert a != (tmp_path / "d" / f"{name}.npy").read_bytes()
        # the CSV holds exactly the same float32 values (9 significant digits round-trip)
        csv = load(tmp_path / "c" / f"{name}.csv").astype(np.float32)
        assert np.array_equal(csv, np.load(tmp_path / "a" / f"{name}.npy"))
    wa = json.loads((tmp_path / "a" / "_true_weights.json").read_text())
    wb = json.loads((tmp_path / "b" / "_true_weights.json").read_text())
    assert wa == wb


def test_chunking_does_not_change_output(tmp_path, monkeypatch):
    msd.write_synthetic(str(tmp_path / "big"), 2500, 3, 1, "npy", 1)
    monkeypatch.setattr(msd, "CHUNK_ROWS", 97)
    msd.write_synthetic(str(tmp_path / "small"), 2500, 3, 1, "npy", 1)
    assert ((tmp_path / "big" / "part-00000.npy").read_bytes()
            == (tmp_path / "small" / "part-00000.npy").read_bytes())


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_logistic_regression_recovers_true_weights(tmp_path, fmt):
    msd.write_synthetic(str(tmp_path), rows=1000, features=5, files=2, fmt=fmt, seed=0)
    meta = json.loads((tmp_path / "_true_weights.json").read_text())
    data = np.vstack([load(p) for p in sorted(tmp_path.glob(f"part-*.{fmt}"))])
    x, y = data[:, :-1].astype(np.float64), data[:, -1].astype(np.float64)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(500):  # plain full-batch gradient descent on the mean log-loss
        err = 1.0 / (1.0 + np.exp(-(x @ w + b))) - y
        w -= 0.5 * x.T @ err / len(y)
        b -= 0.5 * err.mean()
    true_w = np.array(meta["weights"])
    cosine = w @ true_w / (np.linalg.norm(w) * np.linalg.norm(true_w))
    assert cosine > 0.9, cosine


# --------------------------------------------------------------------------- breast cancer

BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
        "concave_points", "symmetry", "fractal_dimension"]
HEADER = ([f"mean_{n}" for n in BASE] + [f"{n}_error" for n in BASE]
          + [f"worst_{n}" for n in BASE] + ["label"])


def test_breast_cancer_split_shape_and_header():
    n_total, n_benign = 569, 357  # sklearn: 212 malignant (0), 357 benign (1)
    n_test = math.ceil(0.2 * n_total)  # how sklearn's train_test_split rounds test_size
    assert (n_total - n_test, n_test) == (455, 114)
    parts = {}
    for name, n in (("train.csv", 455), ("test.csv", 114)):
        raw = (BC_DIR / name).read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n")
        lines = raw.decode("ascii").splitlines()
        assert lines[0].split(",") == HEADER
        assert len(lines) == n + 1
        assert all(len(line.split(",")) == 31 for line in lines)
        data = np.loadtxt(BC_DIR / name, delimiter=",", skiprows=1)
        assert data.shape == (n, 31)
        assert set(np.unique(data[:, -1])) == {0.0, 1.0}
        assert (data[:, :-1] >= 0).all()
        parts[name] = data
    both = np.vstack(list(parts.values()))
    assert int(both[:, -1].sum()) == n_benign
    assert len(np.unique(both, axis=0)) == n_total  # a partition: no row in both files
    for name, data in parts.items():  # stratified: class shares agree to within one row
        assert abs(data[:, -1].sum() - len(data) * n_benign / n_total) <= 1


def test_breast_cancer_export_matches_committed_files(tmp_path):
    pytest.importorskip("sklearn")  # optional: only where scikit-learn is installed
    msd.main(["breast-cancer", str(tmp_path)])
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / name).read_bytes() == (BC_DIR / name).read_bytes()
