"""Merging sorted runs and grouping them by key, streaming: nothing here holds more than a block per run."""

from __future__ import annotations

import heapq
from itertools import groupby
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from ..errors import RecordError

_first = itemgetter(0)
_second = itemgetter(1)


def key_order_error(exc: TypeError) -> RecordError:
    return RecordError(
        f"map output keys cannot be put in order ({exc}); every key of one step must be comparable "
        "with every other - all str, all numbers, or tuples of the same shape"
    )


def sort_pairs(pairs: list) -> None:
    """Sort (key, value) pairs by key in place (stable: equal keys keep their order)."""
    try:
        pairs.sort(key=_first)
    except TypeError as exc:
        raise key_order_error(exc) from None


def merge_sorted(runs: list[Iterable[tuple]]) -> Iterator[tuple]:
    """One sorted stream of (key, value) from several sorted ones."""
    if len(runs) == 1:
        return iter(runs[0])
    return _checked(heapq.merge(*runs, key=_first))


def _checked(pairs: Iterator[tuple]) -> Iterator[tuple]:
    try:
        yield from pairs
    except TypeError as exc:
        raise key_order_error(exc) from None


def group_by_key(pairs: Iterable[tuple]) -> Iterator[tuple[Any, Iterator]]:
    """(key, iterator over that key's values) for a key-sorted stream; values are never materialised."""
    for key, group in groupby(pairs, key=_first):
        yield key, map(_second, group)


def combine_sorted(pairs: Iterable[tuple], combiner: Callable | None) -> Iterator[tuple]:
    """Apply a combiner to each key group of a sorted stream (identity when there is none)."""
    if combiner is None:
        yield from pairs
        return
    for key, values in group_by_key(pairs):
        yield from combiner(key, values)
