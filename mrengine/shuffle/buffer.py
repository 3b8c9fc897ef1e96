"""The map output buffer: collects (key, value) pairs within a memory budget, spilling sorted runs.

Pairs are held in memory until their estimated size passes the budget; then they are combined (when
the job has a combiner), sorted, partitioned and written as one spill file with one segment per
partition. `close()` merges the spills (running the combiner again) into the final map output file.
The size estimate comes from `sys.getsizeof` of a sample of pairs: counting every pair would cost more
than the estimate is worth, and the budget is a bound on Python objects, not on encoded bytes.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable

from ..errors import RecordError
from .merge import combine_sorted, merge_sorted, sort_pairs
from .runs import Segment, read_segment, write_segment

_SAMPLE_EVERY = 997
_CHECK_EVERY = 4096
_PAIR_OVERHEAD = 120  # tuple or dict slot + list slot + allocator rounding, measured on CPython 3.11
_COMBINE_AT = 64  # values held for one key before the combiner folds them


class MapOutputBuffer:
    def __init__(
        self,
        num_partitions: int,
        partition: Callable[[Any], int],
        combiner: Callable | None,
        budget_bytes: int,
        spill_dir: str,
        counters: dict,
    ):
        self.num_partitions = num_partitions
        self.partition = partition
        self.combiner = combiner
        self.budget = budget_bytes
        self.spill_dir = spill_dir
        self.counters = counters
        self.spills: list[tuple[str, list[Segment]]] = []
        self._pairs: list = []
        self._groups: dict = {}
        self._held = 0
        self._bytes_per_pair = 0.0
        self._sampled = 0
        self._next_check = _CHECK_EVERY

    # ------------------------------------------------------------ adding

    def add(self, key: Any, value: Any) -> None:
        if self.combiner is None:
            self._pairs.append((key, value))
        else:
            try:
                values = self._groups.get(key)
            except TypeError:
                raise _unhashable(key) from None
            if values is None:
                self._groups[key] = [value]
            else:
                values.append(value)
                if len(values) >= _COMBINE_AT:
                    self._fold(key, values)
        self._held += 1
        if self._held >= self._next_check:
            self._check_budget(key, value)

    def add_all(self, pairs: Iterable[tuple]) -> None:
        add = self.add
        for key, value in pairs:
            add(key, value)

    def _fold(self, key: Any, values: list) -> None:
        before = len(values)
        self.counters["combine_input_records"] += before
        folded = []
        for k, v in self.combiner(key, iter(values)):
            if k == key:
                folded.append(v)
            else:
                self._groups.setdefault(k, []).append(v)
        values[:] = folded
        self.counters["combine_output_records"] += len(folded)
        self._held -= before - len(folded)

    def _check_budget(self, key: Any, value: Any) -> None:
        self._sampled += 1
        size = sys.getsizeof(key) + sys.getsizeof(value) + _PAIR_OVERHEAD
        self._bytes_per_pair += (size - self._bytes_per_pair) / min(self._sampled, 64)
        if self._held * self._bytes_per_pair > self.budget:
            self.spill()
        self._next_check = self._held + _CHECK_EVERY

    # ------------------------------------------------------------ spilling

    def _sorted_partitions(self) -> list[list]:
        """The held pairs, combined, sorted and cut into partitions; empties the buffer."""
        if self.combiner is not None:
            items = list(self._groups.items())
            self._groups = {}
            sort_pairs(items)
            pairs = []
            for key, values in items:
                self.counters["combine_input_records"] += len(values)
                before = len(pairs)
                pairs.extend(self.combiner(key, iter(values)))
                self.counters["combine_output_records"] += len(pairs) - before
        else:
            pairs, self._pairs = self._pairs, []
            sort_pairs(pairs)
        self._held = 0
        self._next_check = _CHECK_EVERY
        parts: list[list] = [[] for _ in range(self.num_partitions)]
        partition = self.partition
        last_key: Any = _NOTHING
        target: list = parts[0]
        for pair in pairs:
            key = pair[0]
            if key is not last_key and key != last_key:
                target = parts[partition(key)]
                last_key = key
            target.append(pair)
        return parts

    def spill(self) -> None:
        parts = self._sorted_partitions()
        path = os.path.join(self.spill_dir, f"spill-{len(self.spills):04d}.run")
        with open(path, "wb") as out:
            segments = _write_partitions(out, parts)
        self.spills.append((path, segments))
        self.counters["spilled_records"] += sum(s.records for s in segments)

    # ------------------------------------------------------------ closing

    def close(self, path: str) -> list[Segment]:
        """Write the final map output to `path`: one sorted segment per partition."""
        if not self.spills:
            parts = self._sorted_partitions()
            with open(path, "wb") as out:
                segments = _write_partitions(out, parts)
        else:
            if self._held:
                self.spill()
            segments = self._merge_spills(path)
        self.counters["map_output_records"] += sum(s.records for s in segments)
        return segments

    def _merge_spills(self, path: str) -> list[Segment]:
        files = [open(p, "rb") for p, _ in self.spills]
        try:
            segments = []
            with open(path, "wb") as out:
                for p in range(self.num_partitions):
                    runs = []
                    for f, (spill_path, spill_segments) in zip(files, self.spills):
                        seg = spill_segments[p]
                        if seg.length:
                            runs.append(_segment_reader(f, seg, spill_path))
                    merged = combine_sorted(merge_sorted(runs), self.combiner) if runs else iter(())
                    segments.append(write_segment(out, merged, out.tell()))
        finally:
            for f in files:
                f.close()
            for spill_path, _ in self.spills:
                os.unlink(spill_path)
        return segments


_NOTHING = object()


def _segment_reader(f, segment: Segment, source: str):
    # Partitions are merged one after another, so each spill file serves one segment at a time.
    f.seek(segment.offset)
    yield from read_segment(f, segment.length, source)


def _write_partitions(out, parts: list[list]) -> list[Segment]:
    return [write_segment(out, pairs, out.tell()) for pairs in parts]


def _unhashable(key: Any) -> RecordError:
    return RecordError(f"a map output key of type {type(key).__name__} cannot be combined: keys must be hashable (use a tuple, not a list)")
