"""Check a jobs/terasort.py output against its input: globally ordered, the same records.

    python scripts/teravalidate.py INPUT_DIR OUTPUT_DIR

As Hadoop's TeraValidate: the part files, read in name order, must hold keys in non-decreasing
order, and the output's record count and checksum (the sum of every record's CRC-32, which no
reordering changes) must equal the input's. Exit 0 when all holds, 1 with the first problem found.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import zlib

import msgpack

RECORD = 100


def input_summary(in_dir: str) -> tuple[int, int]:
    """(records, checksum) of the input files."""
    count = checksum = 0
    for path in sorted(glob.glob(os.path.join(in_dir, "*.tera"))):
        with open(path, "rb") as f:
            while chunk := f.read(RECORD * 10_000):
                for i in range(0, len(chunk), RECORD):
                    checksum += zlib.crc32(chunk[i:i + RECORD])
                count += len(chunk) // RECORD
    return count, checksum


def output_summary(out_dir: str) -> tuple[int, int, str | None]:
    """(records, checksum, the first order violation or None) of the output's part files."""
    count = checksum = 0
    previous, problem = None, None
    for path in sorted(glob.glob(os.path.join(out_dir, "part-*"))):
        with open(path, "rb") as f:
            for key, value in msgpack.Unpacker(f, raw=False):
                if previous is not None and key < previous and problem is None:
                    problem = f"{os.path.basename(path)} record {count}: key {key.hex()} after {previous.hex()}"
                previous = key
                checksum += zlib.crc32(key + value)
                count += 1
    return count, checksum, problem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_dir")
    parser.add_argument("output_dir")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.output_dir, "_SUCCESS")):
        print(f"{args.output_dir} is not a finished output (no _SUCCESS)")
        return 1
    n_in, sum_in = input_summary(args.input_dir)
    n_out, sum_out, problem = output_summary(args.output_dir)
    if problem:
        print(f"not globally sorted: {problem}")
        return 1
    if (n_in, sum_in) != (n_out, sum_out):
        print(f"records differ: input {n_in} records, checksum {sum_in:x}; output {n_out} records, checksum {sum_out:x}")
        return 1
    print(f"ok: {n_out} records globally sorted, checksum {sum_out:x} as the input's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
