"""Merging sorted runs, combining and grouping them by key, streaming: memory holds a block per run read.

`merge_runs` reads at most `MERGE_FACTOR` runs at once. With more, it first merges consecutive runs
into intermediate files (a pass), as few as needed to leave `MERGE_FACTOR`, so open files and memory
stay bounded however many spills or map outputs there are. Runs keep their order throughout and
`heapq.merge` is stable, so equal keys keep their values in run order. Keys are ordered and grouped
by `order`: as they are when every run holds keys of one plain type, by `order.sort_key` otherwise.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections import Counter
from itertools import chain, count, groupby
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from ..errors import JobDefinitionError
from .order import ANY, combined_kind, kind_of, pair_key, same_key
from .runs import Run, read_run, run_kind, write_segment

MERGE_FACTOR = 32

_first = itemgetter(0)
_second = itemgetter(1)


class SortedPairs:
    """A stream of (key, value) pairs sorted for `kind` (see `order`): iterate it for the pairs."""

    def __init__(self, pairs: Iterable[tuple], kind: str):
        self.pairs = pairs
        self.kind = kind

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.pairs)


def sort_pairs(pairs: list) -> str:
    """Sort (key, value) pairs by key in place (stable: equal keys keep their order); returns their kind."""
    kind = kind_of(map(_first, pairs))
    pairs.sort(key=pair_key(kind))
    return kind


def merge_sorted(runs: list[Iterable[tuple]], kind: str) -> Iterator[tuple]:
    """One sorted stream of (key, value) from several sorted for `kind`."""
    if len(runs) == 1:
        return iter(runs[0])
    return heapq.merge(*runs, key=pair_key(kind))


def group_by_key(pairs: SortedPairs) -> Iterator[tuple[Any, Iterator]]:
    """(key, iterator over that key's values) for a key-sorted stream; values are never materialised."""
    if pairs.kind != ANY:
        for key, group in groupby(pairs, key=_first):
            yield key, map(_second, group)
        return
    for _, group in groupby(pairs, key=pair_key(ANY)):
        first = next(group)
        yield first[0], map(_second, chain((first,), group))


def combine_sorted(pairs: Iterable[tuple], combiner: Callable | None, counters: Counter, kind: str) -> Iterator[tuple]:
    """Apply a combiner to each key group of a stream sorted for `kind` (identity when there is none).

    A key with a single value is passed through: combining it could not make it smaller, and a
    combiner may run any number of times, zero included.
    """
    if combiner is None:
        yield from pairs
        return
    for _, group in groupby(pairs, key=pair_key(kind)):
        first = next(group)
        second = next(group, None)
        if second is None:
            yield first
            continue
        consumed = count()  # zip advances it once per value the combiner takes
        values = map(_first, zip(map(_second, chain((first, second), group)), consumed))
        yield from combine_group(combiner, first[0], values, counters)
        counters["combine_input_records"] += next(consumed)


def combine_group(combiner: Callable, key: Any, values: Iterable, counters: Counter) -> Iterator[tuple]:
    """The combiner's output for one key, which must stay that key (the output has to stay sorted)."""
    produced = 0
    for out_key, out_value in combiner(key, iter(values)):
        if not same_key(out_key, key):
            raise JobDefinitionError(
                f"combiner({key!r}, values) yielded the key {out_key!r}: a combiner must yield the key it is given"
            )
        produced += 1
        yield key, out_value
    counters["combine_output_records"] += produced


def merge_runs(runs: list[Run], combiner: Callable | None, tmp_dir: str, counters: Counter, passes_counter: str,
               factor: int = MERGE_FACTOR) -> SortedPairs:
    """One sorted stream of every run's pairs; `combiner` (if any) runs in the intermediate passes only.

    Intermediate files go to `tmp_dir` and are deleted once read. Passes count in counters[passes_counter].
    """
    own: set[str] = set()
    runs = list(runs)
    try:
        while len(runs) > factor:
            runs = _merge_pass(runs, combiner, tmp_dir, counters, factor, own)
            counters[passes_counter] += 1
        kind = combined_kind(map(run_kind, runs))
    except BaseException:
        _remove(own)
        raise
    return SortedPairs(_final_merge(runs, kind, own), kind)


def _merge_pass(runs: list[Run], combiner, tmp_dir: str, counters: Counter, factor: int, own: set) -> list[Run]:
    # Merge groups of consecutive runs, from the front, until `factor` runs are left.
    excess = len(runs) - factor
    merged: list[Run] = []
    i = 0
    while excess > 0 and i + 1 < len(runs):
        group = runs[i:i + min(factor, excess + 1)]
        kind = combined_kind(map(run_kind, group))
        fd, path = tempfile.mkstemp(prefix="merge-", suffix=".run", dir=tmp_dir)
        own.add(path)
        with open(fd, "wb") as out:
            stream = combine_sorted(merge_sorted([read_run(r) for r in group], kind), combiner, counters, kind)
            segment = write_segment(out, stream, 0, kind)
        merged.append(Run(path, segment.offset, segment.length, segment.records))
        _remove(own.intersection(r.path for r in group))
        own.difference_update(r.path for r in group)
        excess -= len(group) - 1
        i += len(group)
    return merged + runs[i:]


def _final_merge(runs: list[Run], kind: str, own: set) -> Iterator[tuple]:
    try:
        if runs:
            yield from merge_sorted([read_run(r) for r in runs], kind)
    finally:
        _remove(own)


def _remove(paths: Iterable[str]) -> None:
    for path in list(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
