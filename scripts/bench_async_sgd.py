#!/usr/bin/env python3
"""A straggler against synchronous rounds and against the parameter server: jobs/sgd.py on the
breast-cancer split, on a cluster of 2 or 4 single-slot workers (one split each) of which worker 0 is
slowed threefold: it runs with SGD_SLOW_FACTOR=3 in its environment, so every task it runs takes three
times as long. Both modes run on the same cluster, one after the other.

    python scripts/bench_async_sgd.py [--workers 2] [--staleness 4] [--slow-factor 3]

Synchronous: gradient mode, 30 epochs, lr 1 (docs/SGD.md's run); its wall time is the sum of its
training rounds (log.csv), its target the final model's training loss. Async: mode=async with the
given staleness, 10 epochs, lr 0.5, a checkpoint every 10 updates; its time to the target is the
`seconds` (since the server started, just before its one training round) of the first checkpoint
whose parameters score a training loss at or below the target. Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from mrengine.paramserver import read_checkpoint  # noqa: E402

DATA = os.path.join(ROOT, "sample_data", "breast_cancer")
L2 = 1 / 455


MRENGINE = [sys.executable, "-m", "mrengine"]
ENV = {**os.environ, "PYTHONPATH": ROOT}


def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def cluster(base: str, workers: int, slow_factor: float):
    """A master and `workers` single-slot workers on 127.0.0.1, worker 0 slowed; yields the
    `mrengine run` arguments that submit to it."""
    secret, ready = os.path.join(base, "cluster.key"), os.path.join(base, "master.address")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(secrets.token_hex(32))
    procs = []

    def start(name, args, env):
        with open(os.path.join(base, f"{name}.log"), "wb") as log:
            procs.append(subprocess.Popen([*MRENGINE, *args], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=env))

    try:
        start("master", ["master", "--bind", "127.0.0.1:0", "--secret-file", secret, "--ready-file", ready], ENV)
        wait_until(lambda: os.path.exists(ready) and open(ready).read().strip(), "the master to listen")
        address = open(ready).read().strip()
        for i in range(workers):
            env = {**ENV, "SGD_SLOW_FACTOR": str(slow_factor)} if i == 0 else ENV
            start(f"worker-{i}", ["worker", "--master", address, "--secret-file", secret,
                                  "--work-dir", os.path.join(base, f"work-{i}")], env)
        for i in range(workers):
            wait_until(lambda: " registered with " in open(os.path.join(base, f"worker-{i}.log")).read(),
                       f"worker {i} to register")
        yield ["--master", address, "--secret-file", secret]
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


def run_sgd(out: str, workers: int, submit: list, *params: str) -> dict:
    cmd = [*MRENGINE, "run", os.path.join(ROOT, "jobs", "sgd.py"), os.path.join(DATA, "train.csv"), "-o", out, *submit,
           "--split-size", "64k" if workers == 2 else "25k", "-p", f"l2={L2}", *params]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    return json.load(open(os.path.join(out, "model.json")))


def training_loss(params: dict, model: dict) -> float:
    a = np.loadtxt(os.path.join(DATA, "train.csv"), delimiter=",", skiprows=1)
    x, y = a[:, :-1], a[:, -1]
    s = model["standardization"]
    z = ((x - np.array(s["mean"])) / np.array(s["scale"])) @ params["w"] + float(params["b"][0])
    return float(np.mean(np.logaddexp(0, z) - y * z))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, choices=(2, 4), default=2)
    ap.add_argument("--staleness", default="4")
    ap.add_argument("--slow-factor", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, cluster(tmp, args.workers, args.slow_factor) as submit:
        sync = run_sgd(f"{tmp}/sync", args.workers, submit, "-p", "epochs=30", "-p", "lr=1.0")
        log = np.loadtxt(f"{tmp}/sync/log.csv", delimiter=",", skiprows=1)
        sync_seconds, target = float(log[:, 3].sum()), sync["train"]["loss"]
        run_sgd(f"{tmp}/async", args.workers, submit, "-p", "mode=async", "-p", f"staleness={args.staleness}",
                "-p", "epochs=10", "-p", "lr=0.5", "-p", "checkpoint_every=10")
        reached = None
        for path in sorted(glob.glob(f"{tmp}/async/checkpoints/params-*.npz")):
            params, meta = read_checkpoint(path)
            if training_loss(params, sync) <= target:
                reached = meta
                break
        final = json.load(open(f"{tmp}/async/model.json"))
    print(f"{args.workers} workers, worker 0 slowed {args.slow_factor:g}x")
    print(f"synchronous (gradient, 30 epochs): {sync_seconds:.2f}s of rounds, final training loss {target:.6f}")
    if reached is None:
        print(f"async (staleness {args.staleness}): never reached it; final training loss {final['train']['loss']:.6f}")
        sys.exit(1)
    print(f"async (staleness {args.staleness}): reached it after {reached['seconds']:.2f}s ({reached['version']} updates); "
          f"final training loss {final['train']['loss']:.6f}")
    print(f"ratio: {reached['seconds'] / sync_seconds:.2f}x")


if __name__ == "__main__":
    main()
