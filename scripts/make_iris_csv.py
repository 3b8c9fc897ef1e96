#!/usr/bin/env python3
"""Write the Iris data set that scikit-learn ships as `sample_data/iris/iris.csv` for jobs/kmeans.py.

    python scripts/make_iris_csv.py [OUT]        # default: sample_data/iris/iris.csv

A header row, then 150 rows: the four measurements in centimetres (each written as Python's `repr`
of the float64 scikit-learn loads, so they read back exactly) and the species as 0 (setosa),
1 (versicolor) or 2 (virginica), in scikit-learn's row order. Needs scikit-learn; nothing is
downloaded.
"""
from __future__ import annotations

import os
import sys

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


def write_iris(path: str) -> int:
    from sklearn.datasets import load_iris  # lazy: the module imports without scikit-learn

    data = load_iris()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.write(HEADER)
        for row, species in zip(data.data.tolist(), data.target.tolist()):
            f.write(",".join(map(repr, row)) + f",{int(species)}\n")
    return len(data.target)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("sample_data", "iris", "iris.csv")
    print(f"{out}: {write_iris(out)} rows")
