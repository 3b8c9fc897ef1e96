"""The on-disk format of sorted runs: blocks of msgpack-encoded records, LZ4-compressed, checksummed.

A block is a 16-byte header — magic, uncompressed length, compressed length, CRC-32 of the compressed
bytes — followed by the compressed bytes of one msgpack array [k1, v1, k2, v2, ...]. Encoding and
decoding a whole block in one msgpack call keeps per-record Python work out of both paths. LZ4
because intermediate data is written once and read once, on the same host or the next: its speed
(hundreds of MB/s per core each way) matters more than the ratio zstd would add (docs/PERFORMANCE.md
has the measurement). Blocks aim at `BLOCK_BYTES` encoded bytes whatever the record size, so a merge
holds a bounded amount per run it reads. A segment is a run of blocks holding one partition's
records; a `Run` names one on disk. The magic's last byte is the segment's key kind (`order.KINDS`):
whether all its keys are str, bytes or int and sorted as Python sorts them, or of any types and sorted
by `order.sort_key`. A merge reads it (`run_kind`) before it starts.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Sequence
from itertools import chain, islice
from typing import BinaryIO, Iterable, Iterator, NamedTuple

import lz4.block

from .. import serde
from ..errors import FetchFailedError, StorageError
from .heavykeys import KeySampler
from .order import ANY, KINDS

_HEADER = struct.Struct("<4sIII")
_MAGIC = b"MRB"  # + the kind
_MAGICS = {_MAGIC + kind.encode(): kind for kind in KINDS}
BLOCK_BYTES = 64 * 1024
_FIRST_BLOCK_RECORDS = 512
_MAX_BLOCK_RECORDS = 16384


class Segment(NamedTuple):
    """Where one partition's records sit in a run file."""

    offset: int
    length: int
    records: int


class PackedSegments(Sequence):
    """A map output's segments in one array of integers, as a worker's shuffle server keeps them for every
    map attempt it holds: 12 bytes a partition (24 past 4 GiB) rather than a `Segment` and its integers,
    ~100 bytes."""

    __slots__ = ("_values",)

    def __init__(self, segments: Iterable[Segment]):
        values = [n for segment in segments for n in segment]
        self._values = array("I" if max(values, default=0) < 1 << 32 else "q", values)

    def __len__(self) -> int:
        return len(self._values) // 3

    def __getitem__(self, partition: int) -> Segment:
        count = len(self._values) // 3
        if partition < 0:
            partition += count
        if not 0 <= partition < count:
            raise IndexError("partition out of range")
        values, at = self._values, 3 * partition
        return Segment(values[at], values[at + 1], values[at + 2])

    def __iter__(self) -> Iterator[Segment]:
        values = iter(self._values)
        return map(Segment._make, zip(values, values, values))


class Run(NamedTuple):
    """A sorted segment in a local file; `map_index` names the map task it came from (-1: this task)."""

    path: str
    offset: int
    length: int
    records: int
    map_index: int = -1


class CorruptRunError(FetchFailedError):
    """A fetched block failed its checksum or did not decode: the map output that held it cannot be
    trusted, and the map task that made it must run again."""


def _corrupt(message: str, map_index: int) -> Exception:
    # A run this task wrote itself (a spill, a merge pass) names no map task: the attempt just fails.
    return CorruptRunError(message, map_index) if map_index >= 0 else StorageError(message)


def write_segment(out: BinaryIO, pairs: Iterable[tuple], offset: int, kind: str = ANY,
                  sampler: KeySampler | None = None) -> Segment:
    """Write (key, value) pairs sorted for their `kind` as blocks at `offset` (the file's current position);
    a `sampler` sees each block's pairs (a map's final output, for the skew report)."""
    magic = _MAGIC + kind.encode()
    it = iter(pairs)
    length = records = 0
    batch_size = _FIRST_BLOCK_RECORDS
    while True:
        batch = list(islice(it, batch_size))
        if not batch:
            return Segment(offset, length, records)
        raw = serde.dumps(list(chain.from_iterable(batch)))
        comp = lz4.block.compress(raw, store_size=False)
        out.write(_HEADER.pack(magic, len(raw), len(comp), zlib.crc32(comp)))
        out.write(comp)
        if sampler is not None:
            sampler.add(batch, len(raw), _HEADER.size + len(comp))
        length += _HEADER.size + len(comp)
        records += len(batch)
        # Size the next block from this one's bytes per record.
        batch_size = max(1, min(_MAX_BLOCK_RECORDS, len(batch) * BLOCK_BYTES // len(raw)))


def read_segment(f: BinaryIO, length: int, source: str = "run", map_index: int = -1) -> Iterator[tuple]:
    """(key, value) pairs of a segment of `length` bytes starting at f's current position."""
    remaining = length
    while remaining > 0:
        header = f.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise _corrupt(f"{source}: truncated block header", map_index)
        magic, raw_len, comp_len, crc = _HEADER.unpack(header)
        comp = f.read(comp_len)
        if magic not in _MAGICS or len(comp) != comp_len or zlib.crc32(comp) != crc:
            raise _corrupt(f"{source}: block failed its checksum (corrupt intermediate data)", map_index)
        try:
            flat = serde.loads(lz4.block.decompress(comp, uncompressed_size=raw_len))
        except Exception as exc:
            raise _corrupt(f"{source}: block does not decode: {exc}", map_index) from None
        remaining -= _HEADER.size + comp_len
        it = iter(flat)
        yield from zip(it, it)


def read_run(run: Run) -> Iterator[tuple]:
    """The pairs of a run; its file is opened on the first pair and closed after the last."""
    with open(run.path, "rb") as f:
        f.seek(run.offset)
        yield from read_segment(f, run.length, run.path, run.map_index)


def run_kind(run: Run) -> str:
    """The key kind of a run (ANY for an empty one), from its first block's header."""
    if not run.length:
        return ANY
    with open(run.path, "rb") as f:
        f.seek(run.offset)
        header = f.read(_HEADER.size)
    kind = _MAGICS.get(header[:len(_MAGIC) + 1])
    if kind is None:
        raise _corrupt(f"{run.path}: not a block header at offset {run.offset} (corrupt intermediate data)", run.map_index)
    return kind
