"""The map output buffer: collects (key, value) pairs within a memory budget, spilling sorted runs.

Pairs are held in memory until their estimated size passes the budget; then they are combined (when
the job has a combiner), sorted, partitioned and written as one spill file with one segment per
partition. `close()` merges the spills partition by partition, running the combiner again, into the
final map output file (in several passes when there are more spills than `merge.MERGE_FACTOR`).

With a combiner, values are grouped by key as they arrive, in a dict keyed by the keys themselves
while all are of one plain type (str, bytes or int: see `order`), by `order.group_key` from the first
key of another type on, so that keys equal by == but not the same key (1, 1.0, True) stay apart.
When the budget is reached, the combiner
first folds in memory every key's pile of values; only if that does not free half the budget does
the buffer spill. A sum over a small vocabulary (word count) so never spills, however big the input.
A combiner declared as a `combiners.Fold` (an associative operation, such as `sum_values`) needs
no lists at all: each value is folded into its key's running value as it arrives, one dict lookup and
one operation per pair, and nothing is left to combine at a spill.
`collect` takes the outputs of many mapper calls at once so that the per-pair work (a dict lookup
and an append) happens inside one Python frame, with no call per pair. A mapping's items handed to an
empty buffer (what a `map_split` returning a `Counter` gives) are held as they are, one value per key
and nothing to group or combine, until they are sorted and written: the mapping is in memory already.

The size estimate multiplies what is held by sizes sampled with `sys.getsizeof` now and then:
measuring every pair would cost more than the estimate is worth. Samples come often enough that the
budget is overshot by at most about `1/_OVERSHOOT` of itself, however big the pairs. The budget bounds
Python objects, not encoded bytes.
"""

from __future__ import annotations

import operator
import os
import sys
from collections import Counter
from collections.abc import ItemsView
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from .heavykeys import KeySampler
from .merge import combine_group, combine_sorted, merge_runs, sort_pairs
from .order import ANY, PLAIN_TYPES, group_key, kind_of, pair_key
from .runs import Run, Segment, write_segment

_FOLD_AT = 8  # values one key must hold for an in-memory fold to combine them
_FOLD_ENOUGH = 0.5  # a fold that leaves more than this share of the budget held is followed by a spill
_CHECK_EVERY = 4096  # most pairs between two looks at the budget
_OVERSHOOT = 16
_PAIR_OVERHEAD = 64  # the pair's tuple and its list slot (CPython 3.11, 64-bit)
_GROUP_OVERHEAD = 160  # a key's dict entry and its value list, with the list's spare room
_VALUE_OVERHEAD = 8  # a value's slot in its key's list
_FOLD_OVERHEAD = 100  # a key's dict entry and the running value's own object

_first = itemgetter(0)


class MapOutputBuffer:
    def __init__(
        self,
        num_partitions: int,
        partition: Callable[[Any], int],
        combiner: Callable | None,
        budget_bytes: int,
        spill_dir: str,
        counters: Counter,
        fold: Callable[[Any, Any], Any] | None = None,
        fold_error: Callable[[Exception, Any], Exception] | None = None,
    ):
        self.num_partitions = num_partitions
        self.partition = partition
        self.combiner = combiner
        self._fold_op = fold  # the combiner's associative operation, while values are folded as they come
        self._fold_error = fold_error  # turns the operation's exception on a key into the one to raise
        self.budget = budget_bytes
        self.spill_dir = spill_dir
        self.counters = counters
        self.spills: list[tuple[str, list[Segment]]] = []
        self._pairs: list = []  # without a combiner: the pairs as they came
        self._distinct: ItemsView | None = None  # a mapping's items, when they are all the buffer holds
        self._groups: dict = {}  # with one: key (or group_key) -> values not yet combined
        self._folds: dict = {}  # with a fold: key -> its values folded so far
        self._plain_type: type | None = None  # the one type of every key so far, while it is a plain one
        self._keys: dict | None = None  # once grouped by group_key: group_key -> key, where they differ
        self._held = 0  # pairs (or values) in memory
        self._dropped = 0  # values folded away or spilled, so that held + dropped = pairs collected
        self._key_bytes = 0.0
        self._value_bytes = 0.0
        self._samples = 0
        self._next_check = 1
        self.heavy_keys: list[list] = []  # after close(): per partition, its sampled heaviest keys (`heavykeys`)

    # ------------------------------------------------------------ adding

    def collect(self, outputs: Iterable[Iterable[tuple]]) -> None:
        """Add the (key, value) pairs of every iterable in `outputs` (typically one per mapper call)."""
        if self._distinct is not None:  # more pairs after a mapping's: collect them all alike
            outputs = chain((self._distinct,), outputs)
            self._distinct, self._held = None, 0
        if self.combiner is None:
            self._collect_pairs(outputs)
        elif self._fold_op is not None:
            self._collect_folds(outputs)
        else:
            self._collect_groups(outputs)

    def add_all(self, pairs: Iterable[tuple]) -> None:
        if isinstance(pairs, ItemsView) and not (self._held or self.spills):
            self._distinct = pairs
            self._held = len(pairs)
            return
        self.collect((pairs,))

    def _collect_pairs(self, outputs: Iterable[Iterable[tuple]]) -> None:
        append = self._pairs.append  # spills empty the list in place, so this stays valid
        held, check = self._held, self._next_check
        try:
            for out in outputs:
                for key, value in out:
                    append((key, value))
                    held += 1
                    if held >= check:
                        self._held = held
                        self._check_budget(key, value)
                        held, check = self._held, self._next_check
        finally:
            self._held = held

    def _collect_folds(self, outputs: Iterable[Iterable[tuple]]) -> None:
        outputs = iter(outputs)
        rest = self._fold_plain(outputs)
        if rest is not None:
            self._stop_folding()
            self._collect_groups(chain(rest, outputs))

    def _fold_plain(self, outputs: Iterator[Iterable[tuple]]) -> list | None:
        """Fold each value into its key's running value while every key is of `_plain_type`; past the
        first key of another type, returns the rest.

        The loop is the per-pair cost of every folding job, so a hit costs one subscript, one call and
        one store: the budget is looked at when a key is new (only new keys take room) and after each
        mapper call (a value that grows as it folds), not per pair."""
        folds, op = self._folds, self._fold_op  # folds is emptied in place by spills
        adds = op is operator.add
        held, check = self._held, self._next_check
        plain = self._plain_type
        check_hits = plain is int  # as in _collect_plain_groups
        key = value = None
        try:
            for out in outputs:
                out = iter(out)
                for key, value in out:
                    if check_hits and type(key) is not plain:
                        return [[(key, value)], out]
                    try:
                        if adds:  # `+` itself, without the call: a tenth of the per-pair cost of a sum
                            folds[key] = folds[key] + value
                        else:
                            folds[key] = op(folds[key], value)
                    except KeyError as exc:
                        if key in folds:  # raised by op
                            raise self._fold_error(exc, key) from None
                        if type(key) is not plain:
                            if plain is not None or type(key) not in PLAIN_TYPES:
                                return [[(key, value)], out]
                            plain = self._plain_type = type(key)
                            check_hits = plain is int
                        folds[key] = value
                        if held >= check:
                            self._held = held
                            self._check_budget(key, value)
                            held, check = self._held, self._next_check
                    except Exception as exc:
                        if not _hashable(key):
                            return [[(key, value)], out]
                        raise self._fold_error(exc, key) from None
                    held += 1
                if held >= check:
                    self._held = held
                    self._check_budget(key, value)
                    held, check = self._held, self._next_check
        finally:
            self._held = held
        return None

    def _stop_folding(self) -> None:
        """From now on, group values for the combiner: each key's running value is its group's first."""
        self._count_folded()
        self._groups.update((key, [value]) for key, value in self._folds.items())
        self._dropped += self._held - len(self._folds)
        self._held = len(self._folds)
        self._folds.clear()
        self._fold_op = None

    def _count_folded(self) -> None:
        """Count the held pairs as combined into the running values."""
        self.counters["combine_input_records"] += self._held
        self.counters["combine_output_records"] += len(self._folds)

    def _collect_groups(self, outputs: Iterable[Iterable[tuple]]) -> None:
        outputs = iter(outputs)
        if self._keys is None:
            rest = self._collect_plain_groups(outputs)
            if rest is None:
                return
            self._keys = {}  # plain keys are their own group_key: the groups stay as they are
            outputs = chain(rest, outputs)
        self._collect_keyed_groups(outputs)

    def _collect_plain_groups(self, outputs: Iterator[Iterable[tuple]]) -> list | None:
        """Group while every key is of `_plain_type`; past the first key of another type, returns the rest."""
        groups = self._groups  # likewise emptied in place
        get = groups.get
        held, check = self._held, self._next_check
        plain = self._plain_type
        # Only numbers other than ints can find an int's group (1.0, True): a new str or bytes key
        # shows its type when it misses.
        check_hits = plain is int
        try:
            for out in outputs:
                out = iter(out)
                for key, value in out:
                    try:
                        values = get(key)
                    except TypeError:  # unhashable: a list, a dict
                        return [[(key, value)], out]
                    if values is None:
                        if type(key) is not plain:
                            if plain is not None or type(key) not in PLAIN_TYPES:
                                return [[(key, value)], out]
                            plain = self._plain_type = type(key)  # the first key
                            check_hits = plain is int
                        groups[key] = [value]
                    elif check_hits and type(key) is not plain:
                        return [[(key, value)], out]
                    else:
                        values.append(value)
                    held += 1
                    if held >= check:
                        self._held = held
                        self._check_budget(key, value)
                        held, check = self._held, self._next_check
        finally:
            self._held = held
        return None

    def _collect_keyed_groups(self, outputs: Iterable[Iterable[tuple]]) -> None:
        groups, keys = self._groups, self._keys
        get = groups.get
        held, check = self._held, self._next_check
        try:
            for out in outputs:
                for key, value in out:
                    group = group_key(key)
                    values = get(group)
                    if values is None:
                        groups[group] = [value]
                        if group is not key:
                            keys[group] = key
                    else:
                        values.append(value)
                    held += 1
                    if held >= check:
                        self._held = held
                        self._check_budget(key, value)
                        held, check = self._held, self._next_check
        finally:
            self._held = held

    def _check_budget(self, key: Any, value: Any) -> None:
        self._samples += 1
        weight = 1 / min(self._samples, 64)
        self._key_bytes += (sys.getsizeof(key) - self._key_bytes) * weight
        self._value_bytes += (sys.getsizeof(value) - self._value_bytes) * weight
        if self._estimate() > self.budget:
            if self.combiner is not None:
                self._fold()
            if self._estimate() > self.budget * _FOLD_ENOUGH:
                self.spill()
        per_pair = self._key_bytes + self._value_bytes + _PAIR_OVERHEAD
        self._next_check = self._held + max(1, min(_CHECK_EVERY, int(self.budget / _OVERSHOOT / per_pair)))

    def _fold(self) -> None:
        """Combine, in memory, the values of every key that has piled up several."""
        combiner, counters = self.combiner, self.counters
        before = self._held
        keys = self._keys or {}
        for group, values in self._groups.items():
            if len(values) >= _FOLD_AT:
                key = keys.get(group, group)
                counters["combine_input_records"] += len(values)
                self._held -= len(values)
                values[:] = [v for _, v in combine_group(combiner, key, values, counters)]
                self._held += len(values)
        self._dropped += before - self._held

    def _estimate(self) -> float:
        if self._fold_op is not None:
            return len(self._folds) * (self._key_bytes + self._value_bytes + _FOLD_OVERHEAD)
        if self.combiner is None:
            return self._held * (self._key_bytes + self._value_bytes + _PAIR_OVERHEAD)
        return (len(self._groups) * (self._key_bytes + _GROUP_OVERHEAD)
                + self._held * (self._value_bytes + _VALUE_OVERHEAD))

    # ------------------------------------------------------------ spilling

    def _sorted_partitions(self) -> tuple[list[list], str, list]:
        """The held pairs, combined, sorted and cut into partitions, their key kind, and the pairs this
        made, in the order it made them (for `_write` to free them in); empties the buffer."""
        distinct = self._distinct is not None or self._fold_op is not None  # one pair per key
        made: list = []
        if self._distinct is not None:  # nothing to combine
            made = list(self._distinct)
            pairs = made.copy()
            kind = sort_pairs(pairs)
            self._distinct = None
        elif self._fold_op is not None:
            self._count_folded()
            kind = kind_of(self._folds)
            made = list(self._folds.items())
            pairs = sorted(made, key=_first)
            self._folds.clear()
        elif self.combiner is not None:
            if self._keys is None:
                kind = kind_of(self._groups)
                items = sorted(self._groups.items(), key=_first)
            else:  # keyed by group_key
                kind = ANY
                key_of = self._keys.get
                items = sorted(((key_of(group, group), values) for group, values in self._groups.items()),
                               key=pair_key(ANY))
                self._keys.clear()
            self._groups.clear()
            pairs = list(self._combined(items))
        else:
            made = self._pairs  # emptied in place by the caller once written
            pairs = made.copy()
            kind = sort_pairs(pairs)
        self._dropped += self._held
        self._held = 0
        if self.num_partitions == 1:
            return [pairs], kind, made
        parts: list[list] = [[] for _ in range(self.num_partitions)]
        partition = self.partition
        if distinct:  # no run of one key to partition once
            for pair, p in zip(pairs, map(partition, map(_first, pairs))):
                parts[p].append(pair)
            return parts, kind, made
        last_key: Any = _NOTHING
        target: list = parts[0]
        any_kind = kind == ANY  # keys equal by == may still be different keys (1 and 1.0)
        for pair in pairs:
            key = pair[0]
            if key is not last_key and (any_kind or key != last_key):
                target = parts[partition(key)]
                last_key = key
            target.append(pair)
        return parts, kind, made

    def _write(self, path: str, samplers: list | None = None) -> list[Segment]:
        """Write what is held to `path`, one sorted segment per partition, and let it go."""
        parts, kind, made = self._sorted_partitions()
        samplers = samplers or [None] * len(parts)
        with open(path, "wb") as out:
            segments = [write_segment(out, pairs, out.tell(), kind, sampler) for pairs, sampler in zip(parts, samplers)]
        # The pairs go in the order they were made (sorting a copy costs 8 B a pair while a spill is
        # written). Freed in key order, they left pymalloc's free lists shuffled, and the slot process's
        # later tasks ran 20-40 % slower (docs/PERFORMANCE.md).
        del parts
        made.clear()
        self._pairs.clear()
        return segments

    def _combined(self, items: list) -> Iterable[tuple]:
        combiner, counters = self.combiner, self.counters
        for key, values in items:
            if len(values) == 1:
                yield key, values[0]
            else:
                counters["combine_input_records"] += len(values)
                yield from combine_group(combiner, key, values, counters)

    def spill(self) -> None:
        path = os.path.join(self.spill_dir, f"spill-{len(self.spills):05d}.run")
        segments = self._write(path)
        self.spills.append((path, segments))
        self.counters["map_spills"] += 1
        self.counters["spilled_records"] += sum(s.records for s in segments)

    # ------------------------------------------------------------ closing

    def close(self, path: str) -> list[Segment]:
        """Write the final map output to `path`: one sorted segment per partition."""
        samplers = [KeySampler() for _ in range(self.num_partitions)]
        if not self.spills:
            segments = self._write(path, samplers)
        else:
            if self._held:
                self.spill()
            segments = self._merge_spills(path, samplers)
        self.heavy_keys = [s.top() for s in samplers]
        self.counters["map_output_records"] += self._dropped
        return segments

    def _merge_spills(self, path: str, samplers: list) -> list[Segment]:
        try:
            segments = []
            with open(path, "wb") as out:
                for p in range(self.num_partitions):
                    runs = [Run(spill_path, *spill_segments[p]) for spill_path, spill_segments in self.spills
                            if spill_segments[p].length]
                    merged = merge_runs(runs, self.combiner, self.spill_dir, self.counters, "map_merge_passes")
                    pairs = combine_sorted(merged, self.combiner, self.counters, merged.kind)
                    segments.append(write_segment(out, pairs, out.tell(), merged.kind, samplers[p]))
        finally:
            for spill_path, _ in self.spills:
                os.unlink(spill_path)
        return segments


_NOTHING = object()


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
