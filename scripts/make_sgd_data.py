#!/usr/bin/env python3
"""Make the numeric datasets for the distributed SGD (logistic regression) examples.

    python scripts/make_sgd_data.py breast-cancer OUTDIR
        OUTDIR/train.csv, OUTDIR/test.csv: scikit-learn's copy of the Wisconsin Diagnostic
        Breast Cancer data, stratified 80/20 split (random_state=0). Needs scikit-learn.

    python scripts/make_sgd_data.py synthetic OUTDIR --rows 2000000 --features 50 \\
            --files 8 --format csv|npy --seed 0
        OUTDIR/part-00000.{csv,npy} ... and OUTDIR/_true_weights.json. Numpy only.

Both layouts put the features first and the 0/1 label as the LAST column; CSV files have a
header row (breast cancer: the 30 feature names, snake_case; synthetic: x0..x{F-1}), then `label`.

Synthetic data: features x ~ N(0, 1) drawn as float32; true weights w ~ N(0, 4/F) (so the
logit x.w + b has standard deviation about 2) and bias b ~ U(-0.5, 0.5), both from --seed;
labels y ~ Bernoulli(sigmoid(x.w + b)), the logit computed in float64 from the float32 x.
An .npy file is one 2-D float32 array of shape (rows, F + 1); a .csv file holds the same
float32 values written with 9 significant digits (enough to round-trip a float32) and the
label as 0/1. File k depends only on (seed, k, its row count, F): each file has its own
random streams, and rows are generated CHUNK_ROWS at a time, so memory stays bounded
(peak RSS about 110 MB for csv, 50 MB for npy at F = 50) whatever --rows is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

CHUNK_ROWS = 16384
LABEL = "label"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function


# --------------------------------------------------------------------------- breast cancer

def breast_cancer_columns(feature_names) -> list[str]:
    """sklearn's names ('mean concave points') in snake_case, then the label."""
    return [str(n).strip().replace(" ", "_") for n in feature_names] + [LABEL]


def write_breast_cancer(outdir: str) -> list[tuple[str, int]]:
    from sklearn.datasets import load_breast_cancer  # lazy: only this subcommand needs it
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=0.2, stratify=data.target, random_state=0)
    header = ",".join(breast_cancer_columns(data.feature_names)) + "\n"
    os.makedirs(outdir, exist_ok=True)
    written = []
    for name, x, y in (("train.csv", x_tr, y_tr), ("test.csv", x_te, y_te)):
        path = os.path.join(outdir, name)
        with open(path, "w", newline="\n") as f:
            f.write(header)
            for row, label in zip(x.tolist(), y.tolist()):
                f.write(",".join(map(repr, row)) + f",{int(label)}\n")
        written.append((path, len(y)))
    return written


# --------------------------------------------------------------------------- synthetic

def true_weights(features: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    w = rng.standard_normal(features) * (2.0 / np.sqrt(features))
    b = float(rng.uniform(-0.5, 0.5))
    return w, b


def rows_per_file(rows: int, files: int) -> list[int]:
    return [rows // files + (1 if k < rows % files else 0) for k in range(files)]


def synthetic_chunks(rows: int, w: np.ndarray, b: float, seed: int, file_index: int):
    """Yield float32 arrays of shape (n, F + 1), n <= CHUNK_ROWS, label last."""
    x_seq, y_seq = np.random.SeedSequence(seed, spawn_key=(1, file_index)).spawn(2)
    x_rng, y_rng = np.random.default_rng(x_seq), np.random.default_rng(y_seq)
    features = len(w)
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        x = x_rng.standard_normal((n, features), dtype=np.float32)
        y = y_rng.random(n) < _sigmoid(x.astype(np.float64) @ w + b)
        yield np.column_stack([x, y.astype(np.float32)])


def _write_npy(path: str, shape: tuple[int, int], chunks) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False, "shape": shape})
        for chunk in chunks:
            f.write(chunk.tobytes())


def _write_csv(path: str, header: str, chunks) -> None:
    with open(path, "w", newline="\n") as f:
        f.write(header)
        for chunk in chunks:
            features = chunk.shape[1] - 1
            row = ",".join(["%.9g"] * features) + ",%d\n"
            f.write((row * len(chunk)) % tuple(chunk.ravel().tolist()))


def write_synthetic(outdir: str, rows: int, features: int, files: int, fmt: str,
                    seed: int) -> list[tuple[str, int]]:
    if rows < files or features < 1 or files < 1:
        raise ValueError("need rows >= files >= 1 and features >= 1")
    os.makedirs(outdir, exist_ok=True)
    w, b = true_weights(features, seed)
    columns = [f"x{i}" for i in range(features)] + [LABEL]
    written = []
    for k, n in enumerate(rows_per_file(rows, files)):
        path = os.path.join(outdir, f"part-{k:05d}.{fmt}")
        chunks = synthetic_chunks(n, w, b, seed, k)
        if fmt == "npy":
            _write_npy(path, (n, features + 1), chunks)
        else:
            _write_csv(path, ",".join(columns) + "\n", chunks)
        written.append((path, n))
    meta = {
        "weights": w.tolist(), "bias": b, "seed": seed, "rows": rows, "features": features,
        "format": fmt, "dtype": "float32", "columns": columns,
        "model": "x ~ N(0,1) iid; y ~ Bernoulli(sigmoid(x . weights + bias))",
        "files": [{"name": os.path.basename(p), "rows": n} for p, n in written],
    }
    with open(os.path.join(outdir, "_true_weights.json"), "w", newline="\n") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return written


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    bc = sub.add_parser("breast-cancer", help="export sklearn's breast cancer data, 80/20 split")
    bc.add_argument("outdir")
    sy = sub.add_parser("synthetic", help="logistic-model data with known weights")
    sy.add_argument("outdir")
    sy.add_argument("--rows", type=int, default=2_000_000)
    sy.add_argument("--features", type=int, default=50)
    sy.add_argument("--files", type=int, default=8)
    sy.add_argument("--format", choices=("csv", "npy"), default="npy")
    sy.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.command == "breast-cancer":
        written = write_breast_cancer(args.outdir)
    else:
        written = write_synthetic(args.outdir, args.rows, args.features, args.files,
                                  args.format, args.seed)
        written.append((os.path.join(args.outdir, "_true_weights.json"), 0))
    seconds = time.perf_counter() - t0
    total_rows = total_bytes = 0
    for path, n in written:
        size = os.path.getsize(path)
        total_rows += n
        total_bytes += size
        print(f"{path}\t{n} rows\t{size} bytes")
    print(f"wrote {len(written)} files, {total_rows} rows, {total_bytes} bytes "
          f"in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
