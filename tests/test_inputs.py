"""Input edge cases end to end, and the line rule on its own."""

import bz2
import gzip
import io
import json
import os
import random
from collections import Counter

import pytest

from conftest import TEST_JOBS, part_files, run_cli
from mrengine import inputs


def _expected_lines(data: bytes) -> list[str]:
    if not data:
        return []
    text = data.decode("utf-8")
    if text.endswith("\n"):
        text = text[:-1]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _run_linecount(tmp_path, input_path, *extra):
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "linecount.py"), input_path, "-o", out, *extra)
    assert result.returncode == 0, result.stderr
    counts = Counter()
    for part in part_files(out):
        for line in open(part, encoding="utf-8"):
            key, n = json.loads(line)
            counts[key] += n
    return counts


@pytest.fixture
def edge_dir(tmp_path):
    d = tmp_path / "edge"
    d.mkdir()
    files = {
        "empty.txt": b"",
        "no-newline.txt": b"alpha beta\ngamma delta",
        "crlf.txt": b"one two\r\nthree\r\n\r\nfour five six\r\n",
        "long-line.txt": b"short\n" + b"x" * 5000 + b" end\nafter\n",
        "unicode.txt": "Ἐν ἀρχῇ ἦν ὁ λόγος\n日本語のテキスト 漢字\nemoji 🎉🎉 ok\nçà et là\n".encode(),
        "tabs and spaces.txt": b"a\tb  c\n\n   \nlast\n",
    }
    for i in range(150):
        files[f"tiny/{i:03d}.txt"] = f"tiny {i}\nline {i % 7}\n".encode()
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    gz_text = "".join(f"gz line {i} {'ä' * (i % 5)}\n" for i in range(3000)).encode()
    (d / "packed.txt.gz").write_bytes(gzip.compress(gz_text))
    (d / "packed.txt.bz2").write_bytes(bz2.compress(b"bz one\nbz two\nbz two"))
    (d / "_hidden.txt").write_bytes(b"must not be read\n")
    (d / ".also-hidden").write_bytes(b"must not be read\n")
    expected = Counter()
    for name, data in files.items():
        expected.update(_expected_lines(data))
    expected.update(_expected_lines(gz_text))
    expected.update(_expected_lines(b"bz one\nbz two\nbz two"))
    return d, expected


@pytest.mark.parametrize("split_size", ["7", "1k", "64MiB"])
def test_every_line_exactly_once(tmp_path, edge_dir, split_size):
    d, expected = edge_dir
    assert _run_linecount(tmp_path, d, "--split-size", split_size, "--workers", "2") == expected


def test_glob_and_several_inputs(tmp_path, edge_dir):
    d, _ = edge_dir
    got = _run_linecount(tmp_path, str(d / "tiny" / "00*.txt"), d / "crlf.txt", "--workers", "1")
    expected = Counter()
    for i in range(10):
        expected.update([f"tiny {i}", f"line {i % 7}"])
    expected.update(["one two", "three", "", "four five six"])
    assert got == expected


def test_invalid_utf8_names_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbroken \xff\xfe here\n")
    result = run_cli("run", os.path.join(TEST_JOBS, "linecount.py"), bad, "-o", tmp_path / "out", "--max-attempts", "1")
    assert result.returncode == 4  # a RecordError, not retried
    assert f"{bad}: bytes at offset 17 are not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_line_rule_reads_every_line_once_for_any_cut():
    rng = random.Random(7)
    for _ in range(2000):
        lines = [rng.choice(["x", "é", "\r", " "]) * rng.randint(0, 9) for _ in range(rng.randint(1, 9))]
        data = rng.choice(["\n", "\r\n"]).join(lines).encode() + rng.choice([b"", b"\n"])
        if not data:
            continue
        size = rng.randint(1, 12)
        got = []
        for start in range(0, len(data), size):
            split = inputs.Split(0, "mem", start, min(start + size, len(data)), None)
            for _, chunk in inputs._read_line_chunks(io.BytesIO(data), split.start, split.end):
                got += inputs._split_lines(chunk.decode())
        assert got == _expected_lines(data)


def test_splits_cover_files_and_keep_compressed_whole(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x" * 2500)
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"y\n" * 1000))
    (tmp_path / "empty.txt").write_bytes(b"")
    files = inputs.list_inputs([str(tmp_path)])
    splits = inputs.make_splits(files, 1000)
    assert [(os.path.basename(s.url), s.start, s.end, s.compression) for s in splits] == [
        ("a.txt", 0, 1000, None), ("a.txt", 1000, 2000, None), ("a.txt", 2000, 2500, None), ("b.txt.gz", 0, -1, "gzip"),
    ]
