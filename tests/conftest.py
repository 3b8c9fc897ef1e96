"""Shared helpers: run the real CLI in a subprocess, read part files, compute reference results."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections import Counter

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_TEXT = os.path.join(REPO, "sample_data", "text")
JOBS = os.path.join(REPO, "jobs")
TEST_JOBS = os.path.join(REPO, "tests", "jobs")


def run_cli(*args, timeout=300, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`mrengine ARGS...` as a user would run it; output captured as text."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mrengine", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL, **kwargs)


def part_files(out_dir) -> list[str]:
    return sorted(glob.glob(os.path.join(str(out_dir), "part-*")))


def read_bytes(out_dir) -> dict[str, bytes]:
    """{file name: content} of every part file and nothing else."""
    return {os.path.basename(p): open(p, "rb").read() for p in part_files(out_dir)}


def read_tsv(out_dir) -> dict[str, str]:
    result = {}
    for path in part_files(out_dir):
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, value = line.rstrip("\n").split("\t")
                assert key not in result, f"{key!r} appears in two part files"
                result[key] = value
    return result


def reference_wordcount(paths) -> Counter:
    counts = Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(line.split())
    return counts


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch):
    """A TMPDIR of this test's own, so leftover temp files of a run can be seen (and other runs' cannot)."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp
