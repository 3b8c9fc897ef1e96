"""Write Sort Benchmark records (gensort's binary format) for jobs/terasort.py.

    python scripts/teragen.py SIZE OUT_DIR [--files N] [--seed S]

Each 100-byte record is a 10-byte random key, the bytes 00 11, the record's number as 32 hex
digits, 88 99 AA BB, 48 filler bytes of hex digits, CC DD EE FF — the layout of gensort's records
(whose keys come from its own generator; these come from numpy's, seeded). SIZE takes k/m/g suffixes
and is rounded down to whole records; the records are spread over N files (default 8) because each
file is one map task.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

RECORD = 100
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_CHUNK = 100_000  # records made at once


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def records(first: int, count: int, rng: np.random.Generator) -> bytes:
    """`count` records numbered from `first`, as one bytes object."""
    out = np.empty((count, RECORD), dtype=np.uint8)
    out[:, 0:10] = rng.integers(0, 256, size=(count, 10), dtype=np.uint8)
    out[:, 10:12] = (0x00, 0x11)
    rows = np.arange(first, first + count, dtype=np.uint64)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)  # 16 nibbles of the row number, most significant first
    digits = _HEX[((rows[:, None] >> shifts) & np.uint64(0xF)).astype(np.intp)]
    out[:, 12:28] = ord("0")  # a 128-bit row id: its upper half is zero here
    out[:, 28:44] = digits
    out[:, 44:48] = (0x88, 0x99, 0xAA, 0xBB)
    out[:, 48:96] = np.repeat(digits[:, 4:16], 4, axis=1)
    out[:, 96:100] = (0xCC, 0xDD, 0xEE, 0xFF)
    return out.tobytes()


def generate(size: int, out_dir: str, files: int, seed: int) -> int:
    """Write size // 100 records into `files` files under out_dir; returns the number of records."""
    total = size // RECORD
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_file = -(-total // files)
    for f in range(files):
        first, last = f * per_file, min((f + 1) * per_file, total)
        with open(os.path.join(out_dir, f"part-{f:05d}.tera"), "wb") as out:
            for start in range(first, last, _CHUNK):
                out.write(records(start, min(_CHUNK, last - start), rng))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", type=parse_size)
    parser.add_argument("out_dir")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    n = generate(args.size, args.out_dir, args.files, args.seed)
    print(f"{n} records ({n * RECORD} bytes) in {args.files} files under {args.out_dir}")


if __name__ == "__main__":
    main()
