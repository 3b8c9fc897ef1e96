"""Word count end to end through the CLI, against an independent Counter reference."""

import glob
import os

import pytest

from conftest import JOBS, SAMPLE_TEXT, read_bytes, read_tsv, reference_wordcount, run_cli

REFERENCE_FILES = sorted(glob.glob(os.path.join(SAMPLE_TEXT, "*.txt")))


@pytest.fixture(scope="module")
def reference():
    return {w: str(n) for w, n in reference_wordcount(REFERENCE_FILES).items()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, reference):
    out = tmp_path_factory.mktemp("baseline") / "wc"
    result = run_cli("run", os.path.join(JOBS, "wordcount.py"), SAMPLE_TEXT, "-o", out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert read_tsv(out) == reference
    return read_bytes(out)


def test_summary_and_layout(tmp_path, reference):
    out = tmp_path / "wc"
    result = run_cli("run", os.path.join(JOBS, "wordcount.py"), SAMPLE_TEXT, "-o", out, "--workers", "2", "-p", "x=1")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["_REPORT.json", "_SUCCESS", "part-00000", "part-00001"]
    assert "[wordcount] map" in result.stderr  # the progress line
    assert "job wordcount succeeded" in result.stderr
    assert "input: 31102 records, 4404412 bytes" in result.stderr
    assert f"output: {len(reference)} records" in result.stderr
    for part in ("part-00000", "part-00001"):
        keys = [line.split("\t")[0] for line in open(out / part, encoding="utf-8")]
        assert keys == sorted(keys), "keys must increase within a part file"


@pytest.mark.parametrize(
    "job, workers, split_size",
    [
        ("wordcount.py", 1, "64MiB"),
        ("wordcount.py", 4, "64MiB"),
        pytest.param("wordcount.py", 2, "16k", marks=pytest.mark.slow),  # 270 splits; edge cases: test_inputs.py
        ("wordcount.py", 2, "64k"),
        ("wordcount_fast.py", 2, "1MiB"),
        pytest.param("wordcount_fast.py", 4, "12000", marks=pytest.mark.slow),  # 368 splits, not powers of two
    ],
)
def test_same_bytes_in_every_configuration(tmp_path, baseline, job, workers, split_size):
    out = tmp_path / "wc"
    result = run_cli("run", os.path.join(JOBS, job), SAMPLE_TEXT, "-o", out, "--workers", workers, "--split-size", split_size)
    assert result.returncode == 0, result.stderr
    assert read_bytes(out) == baseline
    assert "input: 31102 records, 4404412 bytes" in result.stderr  # text_blocks (wordcount_fast.py) counts lines too


def test_reducers_option_sets_part_count(tmp_path, reference):
    out = tmp_path / "wc"
    result = run_cli("run", os.path.join(JOBS, "wordcount_fast.py"), SAMPLE_TEXT, "-o", out, "--reducers", "5")
    assert result.returncode == 0, result.stderr
    assert len(read_bytes(out)) == 5
    assert read_tsv(out) == reference


def test_verify_takes_text_values_that_hold_newlines(tmp_path):
    """Lines are not records when a value holds a newline; size and CRC-32 still catch any change."""
    job = tmp_path / "lines.py"
    job.write_text("def mapper(key, line):\n    yield 'pair', line\n\n"
                   "def reducer(key, values):\n    yield key, '\\n'.join(sorted(values))\n")
    text = tmp_path / "in.txt"
    text.write_text("b\na\nc\n")
    out = tmp_path / "out"
    assert run_cli("run", job, text, "-o", out, "--workers", "1", "--reducers", "1").returncode == 0
    part = out / "part-00000"
    assert part.read_text() == "pair\ta\nb\nc\n"  # one record, three lines
    verified = run_cli("verify", out)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"{out}: 1 part files, 1 records, {part.stat().st_size} bytes match the manifest of job lines"
    part.write_text("pair\ta\nb\nd\n")
    changed = run_cli("verify", out)
    assert changed.returncode == 1 and "part-00000 differs: crc32" in changed.stderr
