"""k-means clustering by Lloyd's iterations on mrengine: each round's map tasks assign their cached
rows to the nearest centre with numpy and add them up per centre, the reduce sums, and the driver
divides to get the next centres.

    mrengine run jobs/kmeans.py sample_data/iris/iris.csv -o out/iris -p k=3 -p features=4 -p seed=1

Input: rows of numbers (`.npy`, `.tsv`, or csv with an optional header). Parameters (-p name=value):

    k=8             clusters (an init file's rows say how many instead)
    init=k-means++  k-means++: the first centre a uniformly random row, each next one a row drawn with
                    probability proportional to its squared distance to the nearest centre so far
                    (D^2 sampling), all draws from `seed`;
                    first: the first k rows of the input;
                    PATH: a file of k rows (same layout as the input), the initial centres in order
    seed=0          seeds k-means++
    iterations=100  at most this many Lloyd iterations
    tol=0           stop once the centres moved by at most this (the sum of their squared movements);
                    at 0, only once they stop moving
    features=       cluster on the first N columns only (e.g. to leave out a label column); default all

It prints the inertia (sum of squared distances of the rows to their centres) per iteration, and
writes to the output directory: `centres.json` (the centres, the initial centres, the final inertia
and cluster sizes, the settings), `centres.npy` (the k x features array) and `log.csv` (iteration,
inertia and cluster sizes of the centres the iteration starts from, the squared shift, seconds).

k-means++ draws are exact and reproducible: every row gets a pseudo-random uniform u from (seed,
draw, its position in the input), and the row with the smallest -log(u) / D^2 wins; that is a
weighted sample with probability D^2 / sum(D^2) (an exponential race), and the smallest value is
found by a combiner and a reducer whatever the splits. The same seed picks the same rows for any
number of workers, any split size and either runner.
"""

import json
import time

import numpy as np

from mrengine import ctx

input_format = "numeric"  # csv, tsv or npy by each file's name; map_split gets 2-D numpy blocks

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def points(block):
    """The block's rows as float64 features (the first `features` columns, or all)."""
    return block[:, :ctx.params.get("features")].astype(np.float64, copy=False)


def nearest(x, centres):
    """Each row's nearest centre (the lowest index on a tie) and its squared distance to it."""
    labels, best = np.zeros(len(x), dtype=np.intp), np.full(len(x), np.inf)
    for j, c in enumerate(centres):
        d2 = ((x - c) ** 2).sum(axis=1)  # row by row, so a row's distance does not depend on its split
        closer = d2 < best
        labels[closer], best[closer] = j, d2[closer]
    return labels, best


def uniforms(seed, draw, rows):
    """A uniform in (0, 1) per row id, from (seed, draw, row) alone: the SplitMix64 stream of that key."""
    key = np.random.SeedSequence([seed, draw]).generate_state(1, np.uint64)[0]
    z = (rows.astype(np.uint64) + np.uint64(1)) * GOLDEN + key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def smallest(key, values):
    yield key, min(values, key=lambda v: (v[0], v[1]))  # (race, row id): ids are unique, rows never compared


def add(key, values):
    yield key, sum(values)


# ---------------------------------------------------------------- map tasks (map_split over numpy blocks)


def row_counts(blocks):
    n, widths = 0, set()
    for a in blocks:
        n += len(a)
        widths.add(a.shape[1])
    return {ctx.split.index: (n, sorted(widths))} if n else {}


def leading_rows(blocks):
    """Up to `limit` first rows of the split (all with None), keyed by (split, row) so they sort in input order."""
    limit, out, i = ctx.broadcast, [], 0
    for a in blocks:
        for row in points(a)[: None if limit is None else max(limit - i, 0)]:
            out.append(((ctx.split.index, i), row))
            i += 1
    return out


def d2_draw(blocks):
    """This split's entry in the race for the next k-means++ centre: its row with the smallest -log(u) / D^2."""
    b = ctx.broadcast
    first, best = b["offsets"].get(ctx.split.index, 0), None
    for a in blocks:
        x = points(a)
        ids = np.arange(first, first + len(x), dtype=np.uint64)
        first += len(x)
        weights = nearest(x, b["centres"])[1] if len(b["centres"]) else np.ones(len(x))
        with np.errstate(divide="ignore"):
            race = -np.log(uniforms(b["seed"], len(b["centres"]), ids)) / weights  # D^2 = 0: inf, never drawn
        i = int(np.argmin(race))
        if best is None or (race[i], int(ids[i])) < best[:2]:
            best = (float(race[i]), int(ids[i]), x[i])
    return [("draw", best)] if best else []


def assign(blocks):
    centres = ctx.broadcast
    k = len(centres)
    out = {"sums": np.zeros_like(centres), "counts": np.zeros(k, dtype=np.int64), "inertia": 0.0}
    for a in blocks:
        x = points(a)
        labels, d2 = nearest(x, centres)
        out["sums"] = out["sums"] + np.stack([np.bincount(labels, weights=col, minlength=k) for col in x.T], axis=1)
        out["counts"] = out["counts"] + np.bincount(labels, minlength=k)
        out["inertia"] += float(d2.sum())
    return out if out["counts"].sum() else {}


# ---------------------------------------------------------------- the driver


def check_params(p):
    for name, least in (("k", 1), ("features", 1), ("iterations", 0)):
        value = p.get(name)
        if value is not None and (type(value) is not int or value < least):
            raise ValueError(f"-p {name}= must be an integer of at least {least}, not {value!r}")
    tol = p.get("tol", 0.0)
    if type(tol) not in (int, float) or tol < 0:
        raise ValueError(f"-p tol= must be a number >= 0, not {tol!r}")


def input_layout(ctx):
    """Rows, columns and each split's first row id (its position in the inputs, split order)."""
    counts = sorted(ctx.map_reduce(ctx.inputs, map_split=row_counts))
    if not counts:
        raise ValueError(f"the input {ctx.inputs} holds no rows")
    widths = {w for _, (_, ws) in counts for w in ws}
    features = ctx.params.get("features")
    if features is None and len(widths) > 1:
        raise ValueError(f"the input's rows have {sorted(widths)} columns; give -p features=N to cluster on the first N")
    if features is not None and features > min(widths):
        raise ValueError(f"-p features={features}, but rows of the input have only {min(widths)} columns")
    offsets, n = {}, 0
    for index, (rows, _) in counts:
        offsets[index] = n
        n += rows
    return n, features or widths.pop(), offsets


def rows_of(ctx, inputs, limit):
    """The first `limit` rows of the inputs (all with None), in input order."""
    rows = sorted(ctx.map_reduce(inputs, map_split=leading_rows, broadcast=limit))  # each split's first rows
    return np.array([row for _, row in rows[:limit]])


def kmeans_plus_plus(ctx, k, seed, offsets):
    centres = np.zeros((0, 0))
    for draw in range(k):
        (_, (race, row, x)), = ctx.map_reduce(ctx.inputs, map_split=d2_draw, reducer=smallest, combiner=smallest,
                                              broadcast={"centres": centres, "seed": seed, "offsets": offsets})
        if not np.isfinite(race):
            raise ValueError(f"the input has only {draw} distinct rows, fewer than k={k}")
        centres = np.vstack([centres.reshape(draw, len(x)), x])
        print(f"k-means++ centre {draw + 1}/{k}: row {row}", flush=True)
    return centres


def initial_centres(ctx, n, features, offsets):
    p = ctx.params
    init, k = p.get("init", "k-means++"), p.get("k")
    if init in ("k-means++", "first") and (k or 8) > n:
        raise ValueError(f"k={k or 8} centres for {n} rows: k must be at most the number of rows")
    if init == "k-means++":
        centres = kmeans_plus_plus(ctx, k or 8, int(p.get("seed", 0)), offsets)
    elif init == "first":
        centres = rows_of(ctx, ctx.inputs, k or 8)
    else:
        centres = rows_of(ctx, [init], None)
        if centres.ndim != 2 or centres.shape[1] != features:
            raise ValueError(f"the init file {init} must hold rows of {features} numbers (the features), "
                             f"not {centres.shape[1] if centres.ndim == 2 else 0}")
        if k is not None and k != len(centres):
            raise ValueError(f"-p k={k}, but the init file {init} holds {len(centres)} centres")
    return centres


def main(ctx):
    p = ctx.params
    check_params(p)
    iterations, tol = p.get("iterations", 100), float(p.get("tol", 0.0))
    n, features, offsets = input_layout(ctx)
    print(f"{n} rows, {features} features; init {p.get('init', 'k-means++')}", flush=True)
    init = initial_centres(ctx, n, features, offsets)
    k = len(init)
    print(f"k {k}, at most {iterations} iterations, tol {tol}", flush=True)

    def lloyd_round(centres):
        return dict(ctx.map_reduce(ctx.inputs, map_split=assign, reducer=add, combiner=add, broadcast=centres))

    centres, done, converged = init, 0, False
    with ctx.open("log.csv", "w") as log:
        log.write("iteration,inertia,shift,sizes,seconds\n")
        while done < iterations and not converged:
            started = time.monotonic()
            t = lloyd_round(centres)
            counts = t["counts"]
            # An empty cluster keeps its centre (scikit-learn would move it to a far row instead).
            new = np.where(counts[:, None] > 0, t["sums"] / np.maximum(counts, 1)[:, None], centres)
            shift = float(((new - centres) ** 2).sum())
            done, converged, centres = done + 1, shift <= tol, new
            seconds = time.monotonic() - started
            empty = f"  ({int(np.sum(counts == 0))} empty)" if np.any(counts == 0) else ""
            print(f"iteration {done:3d}  inertia {t['inertia']:.6f}  shift {shift:.3g}{empty}  ({seconds:.2f}s)", flush=True)
            log.write(f"{done},{t['inertia']!r},{shift!r},{' '.join(map(str, counts.tolist()))},{seconds:.3f}\n")

    final = lloyd_round(centres)
    result = {"k": k, "features": features, "rows": n, "init": p.get("init", "k-means++"), "seed": p.get("seed", 0),
              "iterations": done, "converged": converged, "tol": tol, "inertia": final["inertia"],
              "sizes": final["counts"].tolist(), "centres": centres.tolist(), "initial_centres": init.tolist()}
    print(f"{'converged' if converged else 'stopped'} after {done} iterations: inertia {final['inertia']:.6f}, "
          f"sizes {result['sizes']}", flush=True)
    with ctx.open("centres.json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with ctx.open("centres.npy", "wb") as f:
        np.save(f, centres)
