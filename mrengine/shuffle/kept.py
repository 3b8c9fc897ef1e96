"""What a master keeps of the map outputs: a bit per (map, reduce) pair, and sums per map and per partition.

A job of M maps and R reduces has M·R segments. The master needs of each only whether it holds records
(a reducer fetches those, and no others): where a segment starts, its bytes and its records, the
worker's shuffle server that has the file knows, and sends them with the segment. So a map's result is
kept with a bit a segment (`KeptMapOutput`, R/8 bytes: at Google's 2004 job of 200,000 × 5,000 pairs
125 MB, where 12 bytes a pair were 12 GB) and its records and bytes in all, and the job adds up each
partition's records and bytes as the maps' outputs win (`PartitionTotals`, O(R)), for its report.
"""

from __future__ import annotations

from itertools import compress
from operator import add
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shuffle modules sit below messages (docs/ARCHITECTURE.md)
    from ..messages import MapOutput

_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_FLAGS = bytes.maketrans(b"01", b"\x00\x01")


def bitmap(flags: bytes) -> bytes:
    """Bit i (byte i // 8, bit i % 8) set where `flags[i]` is 1 (each flag 0 or 1), made at C speed from
    binary digits, the last flag's first.

        >>> bitmap(bytes([1, 0, 1, 0, 0, 0, 0, 0, 1])), set_bits(b"\\x05\\x01", 9)
        (b'\\x05\\x01', [0, 2, 8])
    """
    return int(flags[::-1].translate(_DIGITS) or b"0", 2).to_bytes((len(flags) + 7) // 8, "little")


def set_bits(bits: bytes, count: int) -> list[int]:
    """The positions below `count` whose bit is set in `bits` (as `bitmap` makes them), ascending."""
    digits = format(int.from_bytes(bits, "little"), f"0{count}b")[::-1]  # position i is digit i
    return list(compress(range(count), digits.encode().translate(_FLAGS)))


class KeptMapOutput:
    """A map attempt's result as a master keeps it: which partitions' segments hold records, a bit each;
    the output's records and bytes in all; its counters. (Its sampled heavy keys go into the job's
    `heavykeys.RunningTop` as it wins, and are not kept.)

        >>> from mrengine.messages import MapOutput
        >>> kept = KeptMapOutput(MapOutput([120, 0, 7], [4, 0, 1], [["g", "n", 1]]))
        >>> kept.filled, kept.records, kept.bytes
        (b'\\x05', 5, 127)
    """

    __slots__ = ("filled", "records", "bytes", "counters")

    def __init__(self, output: MapOutput):
        lengths = output.lengths
        self.filled = bitmap(bytes(map(bool, lengths)))  # partition p is bit p
        self.records, self.bytes = sum(output.records), sum(output.lengths)
        self.counters = output.counters



class FilledRows:
    """Per partition, the rows of a list of map outputs whose segment for it holds records: one list of all
    rows shared by the partitions every output fills (most, in a job of big maps), a list of its own for
    each other partition.

        >>> from mrengine.messages import MapOutput
        >>> rows = FilledRows([KeptMapOutput(MapOutput([1, 0, 5], [1, 0, 2], [])),
        ...                    KeptMapOutput(MapOutput([3, 2, 0], [1, 1, 0], []))])
        >>> rows.of(0), rows.of(1), rows.of(2), rows.of(0) is rows.all_rows
        ([0, 1], [1], [0], True)
    """

    __slots__ = ("outputs", "everywhere", "all_rows")

    def __init__(self, outputs: list[KeptMapOutput]):
        self.outputs = outputs
        self.everywhere = -1  # the partitions every output fills, as bits of one int
        for output in outputs:
            self.everywhere &= int.from_bytes(output.filled, "little")
        self.all_rows = list(range(len(outputs)))

    def of(self, partition: int) -> list[int]:
        """The rows whose segment for `partition` holds records, ascending."""
        if self.everywhere >> partition & 1:
            return self.all_rows
        at, bit = partition >> 3, 1 << (partition & 7)
        return [row for row, output in enumerate(self.outputs) if output.filled[at] & bit]


class PartitionTotals:
    """Each partition's records and bytes over the map outputs added so far: each map task's first winning
    output (one re-made after its worker was lost makes the same records from the same split)."""

    __slots__ = ("records", "bytes")

    def __init__(self, partitions: int):
        self.records, self.bytes = [0] * partitions, [0] * partitions

    def add(self, output: MapOutput) -> None:
        self.records = list(map(add, self.records, output.records))
        self.bytes = list(map(add, self.bytes, output.lengths))

    def of(self, partition: int) -> tuple[int, int]:
        """(records, bytes) of `partition`."""
        return self.records[partition], self.bytes[partition]
