"""Helpers of the S3 tests: the real CLI in a subprocess, pointed at the test's moto server.

The subprocess (and the master and workers it starts) sees only the server's credentials: every
AWS_* variable of the calling environment is dropped, so a developer's own AWS setup can neither
leak into a test nor be touched by one.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDCOUNT = os.path.join(REPO, "jobs", "wordcount.py")
REDUCE_FAILS = os.path.join(REPO, "tests", "jobs", "wordcount_reduce_fails.py")
RUN_TIMEOUT = 240


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


def mrengine(*args, env: dict, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m mrengine ARGS...`, output captured as text."""
    return subprocess.run([sys.executable, "-m", "mrengine", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def local_parts(out_dir) -> dict[str, bytes]:
    return {os.path.basename(p): open(p, "rb").read() for p in sorted(glob.glob(os.path.join(str(out_dir), "part-*")))}


def s3_parts(fs, prefix: str) -> dict[str, bytes]:
    return {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in sorted(fs.glob(f"{prefix}/part-*"))}


def parse_wordcount(parts: dict[str, bytes]) -> Counter:
    counts: Counter = Counter()
    for data in parts.values():
        for line in data.decode().splitlines():
            word, n = line.split("\t")
            assert word not in counts, f"{word!r} appears twice"
            counts[word] = int(n)
    return counts


def word_text(words: int, per_line: int = 12, distinct: int | None = None) -> bytes:
    """Deterministic text: `words` words, `distinct` of them different, lines of `per_line` words."""
    distinct = distinct or words
    vocab = [f"w{(i * 7919) % distinct:06d}" for i in range(words)]
    lines = [" ".join(vocab[i:i + per_line]) for i in range(0, words, per_line)]
    return ("\n".join(lines) + "\n").encode()
