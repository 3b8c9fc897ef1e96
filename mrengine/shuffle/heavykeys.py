"""The heaviest keys of a map output partition, sampled as its blocks are written, for the skew report.

Every `STRIDE`-th record's key is looked at. A segment is sorted, so all records of one key are
contiguous, and a run of equal sampled keys (the same encoded bytes, as everywhere) is one key: its
samples times `STRIDE` estimate its records, and its sampled pairs' encoded sizes (scaled by the
block's compression) its bytes. A key sampled only once is left out (it may have a single record).
Only the `TOP` heaviest runs by records and the `TOP` heaviest by bytes are kept, so a partition's
summary is bounded whatever its size, and the work is a slice and an encoding per sample. Keys are
user data of any type: they leave the map as short display strings (`display`), never decoded or
compared again; the master adds up the same strings from every map (`merge`).
"""

from __future__ import annotations

import heapq

from .. import serde

STRIDE = 16
MIN_SAMPLES = 2  # a key sampled once may have 1 record as well as 31: too unsure to name; 32 are sure to be seen twice
TOP = 5
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
        for key, records, nbytes in summary:
            total = totals.setdefault(key, [0, 0])
            total[0] += records
            total[1] += nbytes
    rows = [(key, r, b) for key, (r, b) in totals.items()]
    return [{"key": k, "records": r, "bytes": b} for k, r, b in _heaviest(rows)]

