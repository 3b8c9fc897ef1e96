"""What a master keeps of the map outputs: a bit per (map, reduce) pair, and sums per map and per partition.

A job of M maps and R reduces has M·R segments. The master needs of each only whether it holds records
(a reducer fetches those, and no others): where a segment starts, its bytes and its records, the
worker's shuffle server that has the file knows, and sends them with the segment. So a map's result is
kept with a bit a segment (`KeptMapOutput`, R/8 bytes: at Google's 2004 job of 200,000 × 5,000 pairs
125 MB, where 12 bytes a pair were 12 GB) and its records and bytes in all, and the job adds up each
partition's records and bytes as the maps' outputs win (`PartitionTotals`, O(R)), for its report.
"""

from __future__ import annotations

from array import array

from ..messages import MapOutput


class KeptMapOutput:
    """A map attempt's result as a master keeps it: which partitions' segments hold records, a bit each;
    the output's records and bytes in all; its counters and sampled heavy keys.

        >>> kept = KeptMapOutput(MapOutput([120, 0, 7], [4, 0, 1], [["g", "n", 1]]))
        >>> [kept.holds(p) for p in range(3)], kept.records, kept.bytes
        ([True, False, True], 5, 127)
    """

    __slots__ = ("filled", "records", "bytes", "counters", "heavy_keys")

    def __init__(self, output: MapOutput):
        filled = bytearray((len(output.lengths) + 7) // 8)
        for partition, length in enumerate(output.lengths):
            if length:
                filled[partition >> 3] |= 1 << (partition & 7)
        self.filled = bytes(filled)
        self.records, self.bytes = sum(output.records), sum(output.lengths)
        self.counters, self.heavy_keys = output.counters, output.heavy_keys

    def holds(self, partition: int) -> bool:
        """Whether its segment for `partition` holds records."""
        return bool(self.filled[partition >> 3] & 1 << (partition & 7))

    @staticmethod
    def rows_holding(outputs: list["KeptMapOutput"], partition: int) -> list[int]:
        """The indexes into `outputs` of those whose segment for `partition` holds records, ascending."""
        at, bit = partition >> 3, 1 << (partition & 7)
        return [row for row, output in enumerate(outputs) if output.filled[at] & bit]


class PartitionTotals:
    """Each partition's records and bytes over the map outputs added so far: each map task's first winning
    output (one re-made after its worker was lost makes the same records from the same split)."""

    __slots__ = ("records", "bytes")

    def __init__(self, partitions: int):
        self.records, self.bytes = array("q", bytes(8 * partitions)), array("q", bytes(8 * partitions))

    def add(self, output: MapOutput) -> None:
        records, lengths = self.records, self.bytes
        for partition, (length, count) in enumerate(zip(output.lengths, output.records)):
            lengths[partition] += length
            records[partition] += count

    def of(self, partition: int) -> tuple[int, int]:
        """(records, bytes) of `partition`."""
        return self.records[partition], self.bytes[partition]
