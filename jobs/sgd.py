"""Binary logistic regression, trained data-parallel on mrengine: each round's map tasks work on their
splits with numpy, the reduce adds up, and the driver updates the model.

    mrengine run jobs/sgd.py sample_data/breast_cancer/train.csv -o out/model \\
        -p epochs=30 -p lr=1.0 -p l2=0.0022 -p test=sample_data/breast_cancer/test.csv

Input: rows of numbers, features first and the 0/1 label last: `.npy` files (a 2-D array each),
`.tsv`, or csv (any other name; a header line is skipped). Parameters (-p name=value):

    mode=gradient   gradient: every round sums the log-loss gradient over all rows and the driver takes
                    one step, w <- w - lr * (sum of gradients / N + l2 * w): full-batch gradient descent,
                    whose result does not depend on how the rows are split.
                    average: every split runs one pass of mini-batch SGD from the current model and the
                    driver averages the splits' models, weighted by their rows (model averaging).
                    async: a parameter server on the driver holds the model; one long round's map tasks
                    each run every epoch of mini-batch SGD on their split, pulling the model and pushing
                    each step's update, at most `staleness` updates ahead of the slowest task (SSP).
    epochs=20       rounds of training
    lr=0.5          learning rate
    l2=0            L2 penalty: minimises mean log-loss + l2/2 * |w|^2 (scikit-learn's C is 1/(l2 * N))
    batch=16        mini-batch rows (average and async modes)
    seed=0          seeds the shuffles of average and async modes
    staleness=4     async mode: updates a task may run ahead of the slowest (0: lock step; inf: unbounded)
    checkpoint_every=100   async mode: the server writes checkpoints/params-*.npz every this many updates
    resume=PATH     async mode: start the server from this checkpoint (its parameters, version and
                    clocks), so each task resumes at the step it had reached; same input, --split-size,
                    batch and seed as the run that wrote it
    standardize=true   scale features to mean 0, deviation 1 (statistics from a first round)
    test=PATH       evaluate the model on this file after training

A test hook makes a straggler worker: on a worker whose environment holds SGD_SLOW_FACTOR=F (its slot
processes inherit it), every task of this job sleeps so that its own work takes F times as long.

It prints the loss and accuracy per epoch as it goes, and writes to the output directory:
`model.json` (weights and bias for the raw features, the standardisation, scores), `model.npy`
(the weights followed by the bias) and `log.csv` (epoch, loss, accuracy, seconds; the loss and accuracy
of the model each epoch starts from; in async mode each split scored with the model it pulled at the
start of its epoch, and seconds left empty: the epochs overlap); async mode adds `paramserver.json`
(the server's counters and log of applied updates) and `checkpoints/`.
"""

import json
import os
import time

import numpy as np

from mrengine import ctx, paramserver

input_format = "numeric"  # csv, tsv or npy by each file's name; map_split gets 2-D numpy blocks


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def raw_model(model):
    """The model as weights and bias for unscaled features: w.(x - mean)/scale + b = (w/scale).x + b'."""
    w = model["w"] / model["scale"]
    return w, model["b"] - float(model["mean"] @ w)


def scores(x, y, w, b):
    """Margins, summed log-loss and rows classified right. Computes in the data's own precision."""
    z = x @ w.astype(x.dtype, copy=False) + x.dtype.type(b)
    loss = float(np.sum(np.logaddexp(0, z) - y * z, dtype=np.float64))
    return z, loss, int(np.count_nonzero((z > 0) == (y > 0.5)))


def add(key, values):
    yield key, sum(values)


# ---------------------------------------------------------------- map tasks (map_split over numpy blocks)


def column_stats(blocks):
    n, total, squares, bad = 0, 0.0, 0.0, 0
    for a in blocks:
        x, y = a[:, :-1].astype(np.float64), a[:, -1]
        n += len(a)
        total = total + x.sum(axis=0)
        squares = squares + np.einsum("ij,ij->j", x, x)
        bad += int(np.count_nonzero((y != 0) & (y != 1)))
    return {"n": n, "sum": total, "squares": squares, "bad_labels": bad, "splits": 1} if n else {"splits": 1}


def gradient(blocks):
    began = time.monotonic()
    w, b = raw_model(ctx.broadcast)
    out = {"n": 0, "grad": 0.0, "residual": 0.0, "loss": 0.0, "correct": 0}
    for a in blocks:
        x, y = a[:, :-1], a[:, -1]
        z, loss, correct = scores(x, y, w, b)
        r = sigmoid(z) - y
        out["n"] += len(a)
        out["grad"] = out["grad"] + (x.T @ r).astype(np.float64)  # the gradient for raw features
        out["residual"] += float(np.sum(r, dtype=np.float64))
        out["loss"] += loss
        out["correct"] += correct
    straggle(time.monotonic() - began)
    return out if out["n"] else {}


def local_sgd(blocks):
    m = ctx.broadcast
    parts = list(blocks)
    if not parts:
        return {}
    a = np.concatenate(parts) if len(parts) > 1 else parts[0]
    x, y = a[:, :-1], a[:, -1]
    _, loss, correct = scores(x, y, *raw_model(m))
    w, b, n = m["w"].copy(), m["b"], len(a)
    order = np.random.default_rng([m["seed"], m["epoch"], ctx.split.index]).permutation(n)
    for start in range(0, n, m["batch"]):
        rows = order[start:start + m["batch"]]
        xb = (x[rows] - m["mean"]) / m["scale"]
        r = sigmoid(xb @ w + b) - y[rows]
        w -= m["lr"] * (xb.T @ r / len(rows) + m["l2"] * w)
        b -= m["lr"] * float(r.mean())
    return {"n": n, "w": w * n, "b": b * n, "loss": loss, "correct": correct}


SLOW_FACTOR_ENV = "SGD_SLOW_FACTOR"


def straggle(seconds):
    """The test hook: on a worker started with SGD_SLOW_FACTOR=F, a task sleeps so that work that took
    `seconds` takes F times as long. A worker, not a split, is slow: whichever tasks it runs."""
    factor = float(os.environ.get(SLOW_FACTOR_ENV, 1))
    if factor > 1:
        time.sleep((factor - 1) * seconds)


def async_sgd(blocks):
    """Every epoch of mini-batch SGD on this split, against the parameter server: step s is batch
    s % per_epoch of epoch s // per_epoch (rows shuffled from the seed, the epoch and the split), so
    an attempt that resumes at the server's step for this task does exactly the steps still missing."""
    m = ctx.broadcast
    parts = list(blocks)
    if not parts:
        return {}
    a = np.concatenate(parts) if len(parts) > 1 else parts[0]
    x, y, n = a[:, :-1], a[:, -1], len(a)
    per_epoch = -(-n // m["batch"])
    out, order, shuffled = {"n": n}, None, None
    with paramserver.connect(m["server"], ctx.split.index) as ps:
        step, params = ps.join()
        while step < m["epochs"] * per_epoch:
            began = time.monotonic()
            epoch, batch = divmod(step, per_epoch)
            w, b = params["w"], float(params["b"][0])
            if shuffled != epoch:
                order, shuffled = np.random.default_rng([m["seed"], epoch + 1, ctx.split.index]).permutation(n), epoch
            if batch == 0:  # score the model this split starts the epoch from
                _, loss, correct = scores(x, y, *raw_model({**m, "w": w, "b": b}))
                out.update({("rows", epoch + 1): n, ("loss", epoch + 1): loss, ("correct", epoch + 1): correct})
            rows = order[batch * m["batch"]:(batch + 1) * m["batch"]]
            xb = (x[rows] - m["mean"]) / m["scale"]
            r = sigmoid(xb @ w + b) - y[rows]
            delta = {"w": -m["lr"] * (xb.T @ r / len(rows) + m["l2"] * w), "b": np.array([-m["lr"] * float(r.mean())])}
            step, params = ps.push(step, delta)
            straggle(time.monotonic() - began - ps.waited)  # its compute and round trip, not the wait
        ps.finish()
    return out


def evaluate(blocks):
    w, b = raw_model(ctx.broadcast)
    out = {"n": 0, "loss": 0.0, "correct": 0}
    for a in blocks:
        _, loss, correct = scores(a[:, :-1], a[:, -1], w, b)
        out["n"] += len(a)
        out["loss"] += loss
        out["correct"] += correct
    return out if out["n"] else {}


# ---------------------------------------------------------------- the driver


def main(ctx):
    p = ctx.params
    mode, epochs, lr, l2 = p.get("mode", "gradient"), int(p.get("epochs", 20)), float(p.get("lr", 0.5)), float(p.get("l2", 0.0))
    if mode not in ("gradient", "average", "async"):
        raise ValueError(f"mode must be 'gradient', 'average' or 'async', not {mode!r}")
    staleness = p.get("staleness", 4)
    if staleness == "inf":
        staleness = None
    elif not isinstance(staleness, int) or staleness < 0:
        raise ValueError(f"staleness must be a whole number of updates (0 or more) or 'inf', not {staleness!r}")
    if p.get("resume") and mode != "async":
        raise ValueError(f"resume= starts a parameter server from a checkpoint: it needs mode=async, not mode={mode}")
    if mode == "async":
        ctx.require_parameter_server()  # before the statistics round, which may be long on a big input

    def run(inputs, **kw):
        totals = dict(ctx.map_reduce(inputs, reducer=add, combiner=add, **kw))
        if not totals:
            raise ValueError(f"the input {inputs} holds no rows")
        return totals

    stats = run(ctx.inputs, map_split=column_stats)
    if "n" not in stats:  # only splits without rows
        raise ValueError(f"the input {ctx.inputs} holds no rows")
    if stats["bad_labels"]:
        raise ValueError(f"{stats['bad_labels']} rows have a label (last column) other than 0 or 1")
    n, features = stats["n"], len(stats["sum"])
    mean, scale = np.zeros(features), np.ones(features)
    if str(p.get("standardize", True)).lower() not in ("false", "0", "no"):
        mean = stats["sum"] / n
        std = np.sqrt(np.maximum(stats["squares"] / n - mean ** 2, 0.0))
        scale = np.where(std > 0, std, 1.0)
    model = {"w": np.zeros(features), "b": 0.0, "mean": mean, "scale": scale}
    print(f"{n} rows, {features} features; {mode} mode, {epochs} epochs, lr {lr}, l2 {l2}", flush=True)

    with ctx.open("log.csv", "w") as log:
        log.write("epoch,loss,accuracy,seconds\n")
        if mode == "async":
            settings = {"epochs": epochs, "lr": lr, "l2": l2, "batch": int(p.get("batch", 16)), "seed": int(p.get("seed", 0))}
            model = train_async(ctx, run, model, settings, staleness, int(p.get("checkpoint_every", 100)),
                                {"rows": n, "splits": stats["splits"]}, p.get("resume"), log)
        else:
            for epoch in range(1, epochs + 1):
                started = time.monotonic()
                if mode == "gradient":
                    t = run(ctx.inputs, map_split=gradient, broadcast=model)
                    grad = (t["grad"] - mean * t["residual"]) / scale  # chain rule back to scaled features
                    model = {**model, "w": model["w"] - lr * (grad / n + l2 * model["w"]), "b": model["b"] - lr * t["residual"] / n}
                else:
                    settings = {"epoch": epoch, "lr": lr, "l2": l2, "batch": int(p.get("batch", 16)), "seed": int(p.get("seed", 0))}
                    t = run(ctx.inputs, map_split=local_sgd, broadcast={**model, **settings})
                    model = {**model, "w": t["w"] / t["n"], "b": t["b"] / t["n"]}
                seconds = time.monotonic() - started
                loss, accuracy = t["loss"] / t["n"], t["correct"] / t["n"]
                print(f"epoch {epoch:3d}/{epochs}  loss {loss:.6f}  accuracy {accuracy:.4f}  ({seconds:.2f}s)", flush=True)
                log.write(f"{epoch},{loss!r},{accuracy!r},{seconds:.3f}\n")

    w, b = raw_model(model)
    result = {"weights": w.tolist(), "bias": b, "features": features, "rows": n, "mode": mode, "epochs": epochs,
              "lr": lr, "l2": l2, "standardization": {"mean": mean.tolist(), "scale": scale.tolist()},
              "weights_standardized": model["w"].tolist(), "bias_standardized": model["b"]}
    named = [("train", ctx.inputs)] + ([("test", [p["test"]])] if p.get("test") else [])
    for name, inputs in named:
        t = run(inputs, map_split=evaluate, broadcast=model)
        result[name] = {"rows": t["n"], "loss": t["loss"] / t["n"], "accuracy": t["correct"] / t["n"]}
        print(f"{name}: loss {result[name]['loss']:.6f}  accuracy {result[name]['accuracy']:.4f}  ({t['n']} rows)", flush=True)
    with ctx.open("model.json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with ctx.open("model.npy", "wb") as f:
        np.save(f, np.append(w, b))


def train_async(ctx, run, model, settings, staleness, checkpoint_every, layout, resume, log):
    """Async mode: one round whose tasks train against a parameter server (started from the checkpoint
    `resume`, if given); returns the server's model. `layout`: the rows and splits the steps are cut from."""
    features = len(model["w"])
    params, start = {"w": np.zeros(features), "b": np.zeros(1)}, {"version": 0, "clocks": {}}
    # a step is a batch of a split's shuffled rows: the same only for the same splits, batch and seed
    about = {"job": "sgd", "features": features, **layout, "batch": settings["batch"], "seed": settings["seed"]}
    if resume:
        params, start = paramserver.read_checkpoint(resume)
        if start["about"] != about:
            raise ValueError(f"resume={resume} was written for {start['about'] or 'another job'}, and this run is "
                             f"{about}: resume with the same input, --split-size, batch and seed")
        print(f"resuming from {resume}: {start['version']} updates applied", flush=True)
    with ctx.parameter_server(params, staleness=staleness, checkpoint_every=checkpoint_every, tasks=layout["splits"],
                              version=start["version"], clocks=start["clocks"], about=about) as server:
        started = time.monotonic()
        # every task at once: locality would queue splits behind the worker that read them last round
        t = run(ctx.inputs, map_split=async_sgd, broadcast={**model, **settings, "server": server.address}, locality=False)
        final = server.pull()
        for name, value in server.counters.items():
            ctx.counter("paramserver", name, value)
    for epoch in range(1, settings["epochs"] + 1):
        if ("rows", epoch) in t:
            loss, accuracy = t["loss", epoch] / t["rows", epoch], t["correct", epoch] / t["rows", epoch]
            print(f"epoch {epoch:3d}/{settings['epochs']}  loss {loss:.6f}  accuracy {accuracy:.4f}", flush=True)
            log.write(f"{epoch},{loss!r},{accuracy!r},\n")
    print(f"async round: {time.monotonic() - started:.2f}s, staleness {'inf' if staleness is None else staleness}",
          flush=True)
    return {**model, "w": final["w"], "b": float(final["b"][0])}
