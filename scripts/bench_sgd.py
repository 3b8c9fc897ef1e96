#!/usr/bin/env python3
"""Per-round wall time of jobs/sgd.py on an embedded cluster, next to a single-process numpy
full-batch gradient over the same data, measured in the same run.

    python scripts/bench_sgd.py                       # 2M rows x 50 features, npy, 8 splits, 2 workers
    python scripts/bench_sgd.py --splits 2            # the same rows as 2 splits: one per worker
    python scripts/bench_sgd.py --data DIR --epochs 10 --workers 2

Without --data it writes the synthetic set (scripts/make_sgd_data.py, float32 .npy) to a temporary
directory first, as --splits files, each read as one split: a round is that many map tasks, whatever
the number of workers. The cluster side runs `mrengine run jobs/sgd.py` in gradient mode; each epoch is
one map/reduce round whose maps compute the gradient over their cached splits, and its wall time
(submit to results back on the driver) comes from the job's log.csv. The numpy side loads the same
files into one array and times the same computation (margins, log-loss, X'r in the data's float32)
over all rows, one iteration per epoch. Both use the BLAS that numpy was built with: the script
prints which one and its thread count (see threadpoolctl), as OPENBLAS_CORETYPE changes the kernel.
The numpy side uses the library's threads (one per core); each worker's task process gets
--worker-blas-threads (default 1, so 2 workers use the 2 cores numpy does, without oversubscribing).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} threads={i.get('num_threads')}"
                     for i in threadpool_info()) or "no BLAS found"


def make_data(directory: str, rows: int, features: int, files: int) -> None:
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_sgd_data.py"), "synthetic", directory,
                    "--rows", str(rows), "--features", str(features), "--files", str(files), "--format", "npy"],
                   check=True, stdout=subprocess.DEVNULL)


def numpy_rounds(paths: list[str], epochs: int) -> tuple[float, list[float]]:
    """Seconds to load the files, and per-iteration seconds of one full-batch gradient."""
    started = time.perf_counter()
    data = np.concatenate([np.load(p) for p in paths])
    load = time.perf_counter() - started
    x, y = data[:, :-1], data[:, -1]
    w, b = np.zeros(x.shape[1]), 0.0
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        z = x @ w.astype(x.dtype) + x.dtype.type(b)
        loss = float(np.sum(np.logaddexp(0, z) - y * z, dtype=np.float64))
        r = 0.5 * (1.0 + np.tanh(0.5 * z)) - y
        grad = (x.T @ r).astype(np.float64)
        residual = float(np.sum(r, dtype=np.float64))
        times.append(time.perf_counter() - started)
        w, b = w - 0.5 * grad / len(x), b - 0.5 * residual / len(x)
    assert np.isfinite(loss)
    return load, times


def cluster_rounds(data: str, out: str, epochs: int, workers: int, split_size: str,
                   blas_threads: int) -> tuple[float, list[float], str]:
    """Wall seconds of the whole run, per-epoch seconds from log.csv, and the run's summary."""
    cmd = [sys.executable, "-m", "mrengine", "run", os.path.join(ROOT, "jobs", "sgd.py"), os.path.join(data, "*.npy"),
           "-o", out, "--workers", str(workers), "--split-size", split_size, "-p", f"epochs={epochs}", "-p", "lr=0.5"]
    env = dict(os.environ)
    if blas_threads:
        env.update({name: str(blas_threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    total = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"the sgd run failed:\n{proc.stderr}")
    log = np.loadtxt(os.path.join(out, "log.csv"), delimiter=",", skiprows=1, ndmin=2)
    summary = [line for line in proc.stderr.splitlines() if not line.startswith("[")]
    return total, list(log[:, 3]), "\n".join(summary)


def describe(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:7.1f} ms   min {min(times) * 1000:7.1f} ms   "
            f"max {max(times) * 1000:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a directory of .npy files (label last); default: generate the synthetic set")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--splits", type=int, default=8,
                    help="map tasks per round: the synthetic set is written as this many files, each one split")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--split-size", help="with --data (default 64MiB); the synthetic set's files are one split each")
    ap.add_argument("--worker-blas-threads", type=int, default=1,
                    help="BLAS threads per task process (0: the library's default, one per core each)")
    args = ap.parse_args()
    if args.splits < 1:
        ap.error("--splits must be at least 1")
    if args.data is not None and args.split_size is None:
        args.split_size = "64MiB"

    with tempfile.TemporaryDirectory(prefix="bench-sgd-") as tmp:
        data = args.data
        if data is None:
            data = os.path.join(tmp, "data")
            started = time.perf_counter()
            make_data(data, args.rows, args.features, args.splits)
            print(f"wrote {args.rows} x {args.features} float32 rows in {args.splits} .npy files "
                  f"({time.perf_counter() - started:.1f}s)")
        paths = sorted(glob.glob(os.path.join(data, "*.npy")))
        size = sum(os.path.getsize(p) for p in paths)
        if args.split_size is None:  # each generated file is one split
            args.split_size = str(max(os.path.getsize(p) for p in paths))
        print(f"data: {len(paths)} files, {size / 2**20:.0f} MiB; cpus: {os.cpu_count()}; BLAS: {blas_info()}")
        print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
              f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")

        load, single = numpy_rounds(paths, args.epochs)
        total, rounds, summary = cluster_rounds(data, os.path.join(tmp, "out"), args.epochs, args.workers, args.split_size,
                                                args.worker_blas_threads)
        with open(os.path.join(tmp, "out", "model.json")) as f:
            model = json.load(f)

    print(f"\nnumpy, one process, full batch ({args.epochs} iterations after {load:.2f}s loading):")
    print(f"  per iteration   {describe(single)}")
    threads = args.worker_blas_threads or "default"
    print(f"mrengine, {args.workers} workers ({threads} BLAS threads each), gradient mode ({args.epochs} epochs; "
          f"whole run {total:.1f}s including cluster start, the statistics round that reads the files, and the final "
          "evaluation):")
    print(f"  per round       {describe(rounds)}")
    print(f"  ratio of medians (round / numpy iteration): {statistics.median(rounds) / statistics.median(single):.2f}x")
    print(f"  final training loss {model['train']['loss']:.6f}, accuracy {model['train']['accuracy']:.4f}")
    print(summary)


if __name__ == "__main__":
    main()
