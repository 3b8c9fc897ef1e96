"""Merging sorted runs, combining and grouping them by key, streaming: memory holds a block per run read.

`merge_runs` reads at most `MERGE_FACTOR` runs at once. With more, it first merges consecutive runs
into intermediate files (a pass), as few as needed to leave `MERGE_FACTOR`, so open files and memory
stay bounded however many spills or map outputs there are. Runs keep their order throughout and
`heapq.merge` is stable, so equal keys keep their values in run order.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections import Counter
from itertools import chain, count, groupby
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from ..errors import JobDefinitionError, RecordError
from .runs import Run, read_run, write_segment

MERGE_FACTOR = 32

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


def combine_sorted(pairs: Iterable[tuple], combiner: Callable | None, counters: Counter) -> Iterator[tuple]:
    """Apply a combiner to each key group of a sorted stream (identity when there is none).

    A key with a single value is passed through: combining it could not make it smaller, and a
    combiner may run any number of times, zero included.
    """
    if combiner is None:
        yield from pairs
        return
    for key, group in groupby(pairs, key=_first):
        first = next(group)
        second = next(group, None)
        if second is None:
            yield first
            continue
        consumed = count()  # zip advances it once per value the combiner takes
        values = map(_first, zip(map(_second, chain((first, second), group)), consumed))
        yield from combine_group(combiner, key, values, counters)
        counters["combine_input_records"] += next(consumed)


def combine_group(combiner: Callable, key: Any, values: Iterable, counters: Counter) -> Iterator[tuple]:
    """The combiner's output for one key, which must stay that key (the output has to stay sorted)."""
    produced = 0
    for out_key, out_value in combiner(key, iter(values)):
        if out_key is not key and out_key != key:
            raise JobDefinitionError(
                f"combiner({key!r}, values) yielded the key {out_key!r}: a combiner must yield the key it is given"
            )
        produced += 1
        yield key, out_value
    counters["combine_output_records"] += produced


def merge_runs(runs: list[Run], combiner: Callable | None, tmp_dir: str, counters: Counter, passes_counter: str,
               factor: int = MERGE_FACTOR) -> Iterator[tuple]:
    """One sorted stream of every run's pairs; `combiner` (if any) runs in the intermediate passes only.

    Intermediate files go to `tmp_dir` and are deleted once read. Passes count in counters[passes_counter].
    """
    own: set[str] = set()
    runs = list(runs)
    try:
        while len(runs) > factor:
            runs = _merge_pass(runs, combiner, tmp_dir, counters, factor, own)
            counters[passes_counter] += 1
    except BaseException:
        _remove(own)
        raise
    return _final_merge(runs, own)


def _merge_pass(runs: list[Run], combiner, tmp_dir: str, counters: Counter, factor: int, own: set) -> list[Run]:
    # Merge groups of consecutive runs, from the front, until `factor` runs are left.
    excess = len(runs) - factor
    merged: list[Run] = []
    i = 0
    while excess > 0 and i + 1 < len(runs):
        group = runs[i:i + min(factor, excess + 1)]
        fd, path = tempfile.mkstemp(prefix="merge-", suffix=".run", dir=tmp_dir)
        own.add(path)
        with open(fd, "wb") as out:
            stream = combine_sorted(merge_sorted([read_run(r) for r in group]), combiner, counters)
            segment = write_segment(out, stream, 0)
        merged.append(Run(path, segment.offset, segment.length, segment.records))
        _remove(own.intersection(r.path for r in group))
        own.difference_update(r.path for r in group)
        excess -= len(group) - 1
        i += len(group)
    return merged + runs[i:]


def _final_merge(runs: list[Run], own: set) -> Iterator[tuple]:
    try:
        if runs:
            yield from merge_sorted([read_run(r) for r in runs])
    finally:
        _remove(own)


def _remove(paths: Iterable[str]) -> None:
    for path in list(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
