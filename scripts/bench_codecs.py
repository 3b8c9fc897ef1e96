"""Compression codecs on real shuffle blocks: speed each way and ratio (the choice in shuffle/runs.py).

    python scripts/bench_codecs.py            # zstandard is included when installed (pip install zstandard)

Blocks are built as `runs.write_segment` builds them (msgpack arrays of about BLOCK_BYTES) from the
sample text, for three kinds of map output: word count after the combiner (word, count), word count
without one (word, 1), and bulky values (word.position, line). Times are CPU seconds, best of 5.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections import Counter
from itertools import chain
from pathlib import Path

import lz4.block

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrengine import serde  # noqa: E402
from mrengine.shuffle.runs import BLOCK_BYTES  # noqa: E402


def blocks(pairs: list) -> list[list]:
    """Flat [k1, v1, k2, v2, ...] lists, one per block."""
    out, start, n = [], 0, 512
    while start < len(pairs):
        flat = list(chain.from_iterable(pairs[start:start + n]))
        out.append(flat)
        start += n
        n = max(1, min(16384, n * BLOCK_BYTES // len(serde.dumps(flat))))
    return out


def workloads() -> dict[str, list[list]]:
    lines = []
    for path in sorted((ROOT / "sample_data" / "text").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").splitlines()
    words = [w for line in lines for w in line.split()]
    return {
        "combined (word, n)": blocks(sorted(Counter(words).items())),
        "uncombined (word, 1)": blocks(sorted((w, 1) for w in words)),
        "bulky (key, line)": blocks(sorted((f"{w}.{i}", line) for line in lines[:40000] for i, w in enumerate(line.split()[:3]))),
    }


def codecs() -> dict:
    found = {
        "none": (lambda b: b, lambda c, n: c),
        "lz4 (block)": (lambda b: lz4.block.compress(b, store_size=False),
                        lambda c, n: lz4.block.decompress(c, uncompressed_size=n)),
        "zlib level 1": (lambda b: zlib.compress(b, 1), lambda c, n: zlib.decompress(c)),
    }
    try:
        import zstandard
    except ImportError:
        print("(zstandard not installed: pip install zstandard to compare it too)")
        return found
    for level in (1, 3):
        cctx, dctx = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
        found[f"zstd level {level}"] = (cctx.compress, lambda c, n, d=dctx: d.decompress(c, max_output_size=n))
    return found


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def main() -> int:
    print(f"{'workload':<22} {'codec':<14} {'ratio':>6} {'compress MB/s':>14} {'decompress MB/s':>16}")
    for name, flats in workloads().items():
        raws = [serde.dumps(f) for f in flats]
        size = sum(map(len, raws))
        te, td = best(lambda: [serde.dumps(f) for f in flats]), best(lambda: [serde.loads(b) for b in raws])
        print(f"{name:<22} {'(msgpack)':<14} {'':>6} {size / 1e6 / te:14.0f} {size / 1e6 / td:16.0f}")
        for codec, (comp, decomp) in codecs().items():
            packed = [comp(b) for b in raws]
            assert all(decomp(c, len(b)) == b for c, b in zip(packed, raws))
            tc = best(lambda: [comp(b) for b in raws])
            td = best(lambda: [decomp(c, len(b)) for c, b in zip(packed, raws)])
            ratio = size / sum(map(len, packed))
            print(f"{name:<22} {codec:<14} {ratio:6.2f} {size / 1e6 / max(tc, 1e-9):14.0f} {size / 1e6 / max(td, 1e-9):16.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
