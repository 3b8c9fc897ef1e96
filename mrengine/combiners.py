"""Combiners (and reducers) that fold a key's values with one associative, commutative operation.

    from mrengine.combiners import sum_values

    def mapper(path, line):
        for word in line.split():
            yield word, 1

    combiner = reducer = sum_values

A `Fold` is an ordinary combiner or reducer, `(key, values) -> [(key, folded)]`, usable on every
runner. Declaring one tells the map side more than a function can: that values may be folded in any
order and grouping, as they arrive. So the map output buffer keeps one running value per key instead
of a list of values to combine later (Hadoop's `LongSumReducer`, Spark's `reduceByKey(add)`), which
is what lets a mapper that yields `(word, 1)` per word run close to a hand-written `Counter`.

`op` must be associative and commutative; results that depend on the order of floating-point
additions can differ in the last digits from run to run, as with any combiner.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any, Callable, Iterable, Iterator


class Fold:
    """A combiner or reducer: `fold(key, values)` yields `(key, op(op(v1, v2), v3)...)`."""

    def __init__(self, op: Callable[[Any, Any], Any], name: str | None = None):
        self.op = op
        self.__name__ = name or f"fold({getattr(op, '__name__', op)!s})"

    def __call__(self, key: Any, values: Iterable) -> Iterator[tuple]:
        yield key, reduce(self.op, values)

    def __repr__(self) -> str:
        return self.__name__


def fold(op: Callable[[Any, Any], Any]) -> Fold:
    """A combiner folding each key's values with `op` (associative and commutative), e.g. `fold(max)`."""
    return Fold(op)


sum_values = Fold(operator.add, "sum_values")
min_values = Fold(min, "min_values")
max_values = Fold(max, "max_values")
