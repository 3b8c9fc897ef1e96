"""Least-squares linear regression in one pass over the data: every split adds up X'X and X'y with
numpy, the reduce sums them, and the driver solves the normal equations.

    mrengine run jobs/linreg.py DATA -o out/linreg -p l2=0.1 -p test=TEST

Input: rows of numbers, features first and the target last (`.npy`, `.tsv`, or csv with an optional
header). Fits an intercept; `l2` (default 0) adds ridge regularisation of the weights (not the
intercept). Writes `model.json` (weights, bias, rows, training RMSE and R^2, and the test scores if
`-p test=PATH` names a file) and `model.npy` (the weights followed by the bias).
"""

import json

import numpy as np

input_format = "numeric"


def add(key, values):
    yield key, sum(values)


def normal_equations(blocks):
    out = {}
    for a in blocks:
        x = np.column_stack([a[:, :-1].astype(np.float64), np.ones(len(a))])  # last column: the intercept
        y = a[:, -1].astype(np.float64)
        for key, value in (("xtx", x.T @ x), ("xty", x.T @ y), ("yty", y @ y), ("ysum", y.sum()), ("n", len(a))):
            out[key] = out.get(key, 0) + value
    return out


def main(ctx):
    l2 = float(ctx.params.get("l2", 0.0))
    t = dict(ctx.map_reduce(ctx.inputs, map_split=normal_equations, reducer=add, combiner=add))
    if not t:
        raise ValueError(f"the input {ctx.inputs} holds no rows")
    penalty = l2 * np.eye(len(t["xty"]))
    penalty[-1, -1] = 0.0
    theta = np.linalg.lstsq(t["xtx"] + penalty, t["xty"], rcond=None)[0]
    result = {"weights": theta[:-1].tolist(), "bias": float(theta[-1]), "l2": l2}
    named = [("train", ctx.inputs, t)]
    if ctx.params.get("test"):
        test = [ctx.params["test"]]
        named.append(("test", test, dict(ctx.map_reduce(test, map_split=normal_equations, reducer=add, combiner=add))))
    for name, inputs, s in named:
        if len(s.get("xty", ())) != len(theta):
            raise ValueError(f"{inputs} must hold rows of {len(theta) - 1} features and a target, like the training data")
        # The sums give the squared error of any theta: |y - X theta|^2 = y'y - 2 theta'X'y + theta'X'X theta.
        sse = max(float(s["yty"] - 2 * theta @ s["xty"] + theta @ s["xtx"] @ theta), 0.0)
        sst = float(s["yty"] - s["ysum"] ** 2 / s["n"])
        result[name] = {"rows": int(s["n"]), "rmse": (sse / s["n"]) ** 0.5, "r2": 1 - sse / sst if sst > 0 else None}
        print(f"{name}: {s['n']} rows, RMSE {result[name]['rmse']:.6g}, R^2 {result[name]['r2']}", flush=True)
    with ctx.open("model.json", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with ctx.open("model.npy", "wb") as f:
        np.save(f, theta)
