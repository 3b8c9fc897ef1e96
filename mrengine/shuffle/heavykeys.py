"""The heaviest keys of a map output partition, sampled as its blocks are written, for the skew report.

Every `STRIDE`-th record's key is looked at. A segment is sorted, so all records of one key are
contiguous, and a run of equal sampled keys (the same encoded bytes, as everywhere) is one key: its
samples times `STRIDE` estimate its records, and its sampled pairs' encoded sizes (scaled by the
block's compression) its bytes. A key sampled only once is left out (it may have a single record).
Only the `TOP` heaviest runs by records and the `TOP` heaviest by bytes are kept, so a partition's
summary is bounded whatever its size, and the work is a slice and an encoding per sample. Keys are
user data of any type: they leave the map as short display strings (`display`), never decoded or
compared again; the master adds up the same strings from every map as its outputs win
(`RunningTop`, a bounded table per partition, not every map's summaries), Spark's report at the end
(`merge`).
"""

from __future__ import annotations

import heapq

from .. import serde

STRIDE = 16
MIN_SAMPLES = 2  # a key sampled once may have 1 record as well as 31: too unsure to name; 32 are sure to be seen twice
TOP = 5
KEPT = 32 * TOP  # keys a partition's running table may hold; past it, it keeps its 4 * TOP heaviest of each kind
DISPLAY_CHARS = 80


def display(key) -> str:
    """A key as the report shows it: its repr, cut to DISPLAY_CHARS (so `'hot'` and `1` stay apart)."""
    text = repr(key)
    return text if len(text) <= DISPLAY_CHARS else text[:DISPLAY_CHARS - 1] + "…"


class KeySampler:
    """Feed it each block's records (`add`) in segment order; `top()` is the partition's summary."""

    def __init__(self):
        self._phase = 0  # index within the next batch of the next record to sample
        self._key = self._encoded = None  # the current run's key
        self._records = 0  # samples of the current run, times STRIDE
        self._bytes = 0.0
        self._runs: list[tuple[str, int, int]] = []  # finished runs kept: the TOP by records and by bytes

    def add(self, batch: list, raw_bytes: int, stored_bytes: int) -> None:
        """A block's (key, value) pairs, its encoded size and its size on disk."""
        scale = STRIDE * stored_bytes / raw_bytes if raw_bytes else 0.0
        for key, value in batch[self._phase::STRIDE]:
            encoded = serde.dumps(key)
            if encoded != self._encoded:
                self._finish_run()
                self._key, self._encoded = key, encoded
            self._records += STRIDE
            self._bytes += (len(encoded) + len(serde.dumps(value))) * scale
        self._phase = (self._phase - len(batch)) % STRIDE

    def _finish_run(self) -> None:
        if self._records >= MIN_SAMPLES * STRIDE:
            self._runs.append((display(self._key), self._records, round(self._bytes)))
            if len(self._runs) > 4 * TOP:
                self._runs = _heaviest(self._runs)
        self._records, self._bytes = 0, 0.0

    def top(self) -> list[list]:
        """[[key, records, bytes], ...]: the heaviest sampled keys, by records then bytes."""
        self._finish_run()
        self._key = self._encoded = None
        return [list(run) for run in _heaviest(self._runs)]


def _heaviest(runs: list) -> list:
    by_records = heapq.nlargest(TOP, runs, key=lambda r: r[1])
    by_bytes = heapq.nlargest(TOP, runs, key=lambda r: r[2])
    return sorted(set(by_records) | set(by_bytes), key=lambda r: (-r[1], -r[2], r[0]))


def merge(summaries: list[list[list]]) -> list[dict]:
    """One reducer's heaviest keys from the summaries of every map's segment for it."""
    totals: dict[str, list[int]] = {}
    for summary in summaries:
        _add(totals, summary)
    return _rows(totals)


class RunningTop:
    """Per partition, the sampled keys of the map outputs added so far, summed: a master's running
    `merge`, in tables of at most KEPT keys (so O(R), where keeping every map's summaries was O(M·R)).
    A table past KEPT keeps its 4 * TOP heaviest by records and by bytes: a key light in the maps so far
    and heavy later may be counted short, never one heavy throughout."""

    __slots__ = ("_tables",)

    def __init__(self, partitions: int):
        self._tables: list[dict[str, list[int]]] = [{} for _ in range(partitions)]

    def add(self, summaries: list[list[list]]) -> None:
        """A map output's summaries, one a partition (`KeySampler.top`)."""
        for p, summary in enumerate(summaries):
            table = self._tables[p]
            _add(table, summary)
            if len(table) > KEPT:
                by_records = heapq.nlargest(4 * TOP, table.items(), key=lambda item: item[1][0])
                by_bytes = heapq.nlargest(4 * TOP, table.items(), key=lambda item: item[1][1])
                self._tables[p] = dict(by_records + by_bytes)

    def top(self, partition: int) -> list[dict]:
        return _rows(self._tables[partition])


def _add(totals: dict[str, list[int]], summary: list[list]) -> None:
    for key, records, nbytes in summary:
        total = totals.setdefault(key, [0, 0])
        total[0] += records
        total[1] += nbytes


def _rows(totals: dict[str, list[int]]) -> list[dict]:
    rows = [(key, r, b) for key, (r, b) in totals.items()]
    return [{"key": k, "records": r, "bytes": b} for k, r, b in _heaviest(rows)]

