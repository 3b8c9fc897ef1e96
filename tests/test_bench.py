"""scripts/bench.py: its corpus, its byte ranges, and one small run of it end to end (speed is not tested)."""

import importlib.util
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import mrjob_runner_unavailable, mrjob_unavailable
from mrjob_facts import mrjob_lock_files_removed

ROOT = Path(__file__).resolve().parent.parent
# Two of the three sample files (2.4 of 4.4 MB): several files still, and every case's run, mrjob's own
# local runner's above all, about half as long.
CORPUS = str(ROOT / "sample_data" / "text" / "kjv-[np]*.txt")

_spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.timeout(180)


def test_sizes_parse_as_powers_of_1024():
    assert bench.parse_size("256M") == bench.parse_size("256MiB") == 256 << 20
    assert bench.parse_size("1G") == 1 << 30 and bench.parse_size("64k") == 64 << 10 and bench.parse_size("1000") == 1000


def test_the_corpus_is_shuffled_sample_lines_of_the_size_asked_reproducibly(tmp_path):
    a = bench.make_corpus(3 << 20, 7, tmp_path / "a")
    b = bench.make_corpus(3 << 20, 7, tmp_path / "b")
    c = bench.make_corpus(3 << 20, 8, tmp_path / "c")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert (3 << 20) - 1000 < a.stat().st_size <= 3 << 20
    sample = set(bench.sample_lines())
    lines = a.read_bytes().splitlines(keepends=True)
    assert set(lines) <= sample and len(set(lines)) > len(sample) // 2
    assert lines[:100] != sorted(bench.sample_lines())[:100]


def test_byte_ranges_cover_every_file_once_and_cut_at_line_starts():
    files = [str(p) for p in sorted((ROOT / "sample_data" / "text").glob("*.txt"))]
    for parts in (1, 2, 5):
        ranges = bench.line_aligned_ranges(files, parts)
        assert len(ranges) == parts
        pieces = sorted(r for part in ranges for r in part)
        for path in files:
            mine = [(s, e) for p, s, e in pieces if p == path]
            assert mine[0][0] == 0 and mine[-1][1] == os.path.getsize(path)
            assert all(e == s2 for (_, e), (s2, _) in zip(mine, mine[1:]))
            data = open(path, "rb").read()
            assert all(data[s - 1:s] == b"\n" for s, _ in mine[1:])
        counts = Counter()
        for part in ranges:
            counts.update(bench._count_ranges(part))
        whole = Counter()
        for path in files:
            bench.count_lines(whole, path, 0, os.path.getsize(path))
        assert counts == whole


def bench_rows(tmp_path, cases: list[str], timeout: float, env: dict | None = None,
               source: tuple[str, str] = ("--corpus", CORPUS)) -> dict[str, str]:
    """Run bench.py on the sample text (or the `source` given) with `cases` (`env`: variables added to its
    environment); its table's rows by case name."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), *source,
         "--cases", ",".join(cases), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split()[0]: line for line in result.stdout.splitlines() if line.split()[:1] in [[c] for c in cases]}


def test_one_run_checks_every_output_against_the_reference(tmp_path):
    rows = bench_rows(tmp_path, ["counter", "pool", "fast"], timeout=150)
    assert rows["counter"].endswith("reference")
    assert rows["pool"].endswith("ok") and rows["fast"].endswith("ok")
    assert "(worker)" in rows["fast"] or "(task slot)" in rows["fast"]


@pytest.mark.spark
def test_the_spark_rows_check_their_output_too(tmp_path, spark_submit_env):
    """The spark row (spark-fast is the same case of bench.py with another job file, whose output on
    Spark test_spark_local.py checks: one JVM start fewer), on the tests' running JVM."""
    rows = bench_rows(tmp_path, ["counter", "spark"], timeout=170, env=spark_submit_env)
    assert rows["spark"].endswith("ok")


@pytest.mark.slow
def test_the_mrjob_and_streaming_rows_check_their_output_too(tmp_path):
    """mrengine running an mrjob job and a streaming job of Python scripts (and mrjob's own local
    runner where mrjob imports) must all count what the reference counts. On a made corpus of 256 KiB:
    these rows parse every record in Python, and mrjob's runner starts processes per task, so on the
    sample text they cost 36 CPU seconds, here 18."""
    if mrjob_unavailable():
        pytest.skip(mrjob_unavailable())
    cases = ["counter", "mrjob", "streaming"] + ["mrjob-local"] * (mrjob_runner_unavailable() is None)
    with mrjob_lock_files_removed("mr_wordcount"):
        rows = bench_rows(tmp_path, cases, timeout=400, source=("--size", "256k"))
    assert all(rows[c].endswith("ok") for c in cases[1:]), rows
