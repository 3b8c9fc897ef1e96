"""Five rounds over the same input, recording what each round saw: its sums, mrengine's cache and
broadcast counters, and which process won each split's map (for tests/test_iterative.py).

-p scramble=true: after round 1 the driver overwrites the input files' data with zeros (same size),
    so later rounds give the round-1 sums only if they never read the input again.
-p gate=DIR -p pause_after=K: after round K the driver writes DIR/between (the winners so far, as
    JSON) and waits up to 120 s for DIR/go.
"""

import json
import os
import time

import numpy as np

from mrengine import ctx

input_format = "numeric"


def shifted_sums(blocks):
    shift = ctx.broadcast  # the round's number: every row of round r adds r to each column
    out = {"n": 0, "sum": 0.0}
    for a in blocks:
        out["n"] += len(a)
        out["sum"] = out["sum"] + a.sum(axis=0, dtype=np.float64) + shift * len(a)
    out["ran"] = [[ctx.split.index, os.getpid()]] if out["n"] else []
    return out


def total(key, values):
    ctx.counter("processes", str(os.getpid()))  # the reducer's process uses the broadcast too
    yield key, sum(values, [] if key == "ran" else 0)


def main(ctx):
    rounds = []
    for r in range(5):
        result = ctx.map_reduce(ctx.inputs, map_split=shifted_sums, reducer=total, broadcast=float(r))
        totals = dict(result)
        map_pids = sorted({str(pid) for _, pid in totals["ran"]})
        rounds.append({
            "n": totals["n"], "sum": (totals["sum"] - r * totals["n"]).tolist(), "ran": sorted(totals["ran"]),
            "processes": sorted(set(map_pids) | {n for (g, n) in result.counters if g == "processes"}),
            **{name: result.counters["mrengine", name] for name in ("split_reads", "split_cache_hits", "broadcast_loads")},
        })
        if r == 0 and ctx.params.get("scramble"):
            for path in ctx.inputs:
                scramble(path)
        if r + 1 == ctx.params.get("pause_after"):
            gate = ctx.params["gate"]
            with open(os.path.join(gate, "between.tmp"), "w") as f:
                json.dump([rnd["ran"] for rnd in rounds], f)
            os.replace(os.path.join(gate, "between.tmp"), os.path.join(gate, "between"))
            wait_for_file(os.path.join(gate, "go"))
    with ctx.open("rounds.json", "w") as f:
        json.dump(rounds, f)


def scramble(path):
    size = os.path.getsize(path)
    start = 128 if path.endswith(".npy") else 0  # keep an .npy header: the data turns to zeros
    with open(path, "r+b") as f:
        f.seek(start)
        f.write((b"\0" if start else b"#") * (size - start))


def wait_for_file(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)
