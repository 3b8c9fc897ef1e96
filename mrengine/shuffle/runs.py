"""The on-disk format of sorted runs: blocks of msgpack-encoded records, LZ4-compressed, checksummed.

A block is a 16-byte header — magic, uncompressed length, compressed length, CRC-32 of the compressed
bytes — followed by the compressed bytes of one msgpack array [k1, v1, k2, v2, ...]. Encoding a whole
block in one msgpack call keeps per-record Python work out of the write path. LZ4 because it
compresses at several hundred MB/s per core: intermediate data is written once and read once, so
speed matters more than ratio. A segment is a run of blocks holding one partition's records.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Iterable, Iterator, NamedTuple

import lz4.block

from .. import serde
from ..errors import FetchFailedError

_HEADER = struct.Struct("<4sIII")
_MAGIC = b"MRB1"
BLOCK_RECORDS = 8192


class Segment(NamedTuple):
    """Where one partition's records sit in a run file."""

    offset: int
    length: int
    records: int


class CorruptRunError(FetchFailedError):
    """A block failed its checksum or did not decode: the file that holds it cannot be trusted."""


def write_segment(out: BinaryIO, pairs: Iterable[tuple], offset: int) -> Segment:
    """Write sorted (key, value) pairs as blocks at `offset` (the file's current position)."""
    length = records = 0
    flat: list = []
    for key, value in pairs:
        flat.append(key)
        flat.append(value)
        if len(flat) >= 2 * BLOCK_RECORDS:
            length += _write_block(out, flat)
            records += len(flat) // 2
            flat = []
    if flat:
        length += _write_block(out, flat)
        records += len(flat) // 2
    return Segment(offset, length, records)


def _write_block(out: BinaryIO, flat: list) -> int:
    raw = serde.dumps(flat)
    comp = lz4.block.compress(raw, store_size=False)
    out.write(_HEADER.pack(_MAGIC, len(raw), len(comp), zlib.crc32(comp)))
    out.write(comp)
    return _HEADER.size + len(comp)


def read_segment(f: BinaryIO, length: int, source: str = "run", map_index: int = -1) -> Iterator[tuple]:
    """(key, value) pairs of a segment of `length` bytes starting at f's current position."""
    remaining = length
    while remaining > 0:
        header = f.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise CorruptRunError(f"{source}: truncated block header", map_index)
        magic, raw_len, comp_len, crc = _HEADER.unpack(header)
        comp = f.read(comp_len)
        if magic != _MAGIC or len(comp) != comp_len or zlib.crc32(comp) != crc:
            raise CorruptRunError(f"{source}: block failed its checksum (corrupt intermediate data)", map_index)
        try:
            flat = serde.loads(lz4.block.decompress(comp, uncompressed_size=raw_len))
        except Exception as exc:
            raise CorruptRunError(f"{source}: block does not decode: {exc}", map_index) from None
        remaining -= _HEADER.size + comp_len
        it = iter(flat)
        yield from zip(it, it)
