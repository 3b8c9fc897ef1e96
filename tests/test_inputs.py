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


# ---------------------------------------------------------------- text_blocks


def _blocks(path, start, end):
    return list(inputs.TextBlocksInput().read(inputs.Split(0, str(path), start, end, None), None))


def test_text_blocks_hold_each_splits_own_lines_for_any_cut(tmp_path):
    rng = random.Random(11)
    path = tmp_path / "in.txt"
    for _ in range(300):
        lines = [rng.choice(["x", "é", "\r", " "]) * rng.randint(0, 9) for _ in range(rng.randint(1, 9))]
        data = rng.choice(["\n", "\r\n"]).join(lines).encode() + rng.choice([b"", b"\n"])
        if not data:
            continue
        path.write_bytes(data)
        size = rng.randint(1, 12)
        for start in range(0, len(data), size):
            end = min(start + size, len(data))
            own = [line for _, chunk in inputs._read_line_chunks(io.BytesIO(data), start, end)
                   for line in inputs._split_lines(chunk.decode())]
            blocks = _blocks(path, start, end)
            assert "".join(b.values for b in blocks) == "".join(line + "\n" for line in own)
            assert sum(b.record_count() for b in blocks) == len(own)


def test_text_blocks_at_the_edges(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"one two\r\nthree\nfour five")  # CRLF, then a last line without a newline
    assert [b.values for b in _blocks(path, 0, 4)] == ["one two\n"]  # the line that straddles the end
    assert [b.values for b in _blocks(path, 4, 12)] == ["three\n"]  # not the line it starts in
    assert [(b.values, b.records) for b in _blocks(path, 12, 24)] == [("four five\n", 1)]
    assert _blocks(path, 16, 20) == []  # inside the last line: owns no line
    path.write_bytes(b"x" * 30 + b"\n")
    assert _blocks(path, 10, 20) == []


def test_text_blocks_are_about_a_mebibyte_of_whole_lines(tmp_path):
    path = tmp_path / "big.txt"
    line = "some words in a line é\n"
    path.write_text(line * 120_000, encoding="utf-8")  # 2.9 MB
    blocks = _blocks(path, 0, path.stat().st_size)
    assert len(blocks) == 3 and all(b.values.endswith("\n") for b in blocks)
    assert all(len(b.values.encode()) <= inputs._READ_CHUNK + len(line) for b in blocks)
    assert "".join(b.values for b in blocks) == line * 120_000
    assert sum(b.records for b in blocks) == 120_000


def test_text_blocks_name_the_file_and_offset_of_bad_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\nmore fine\nbroken \xff here\n")
    with pytest.raises(inputs.RecordError, match=f"{path}: bytes at offset 27 are not valid UTF-8"):
        _blocks(path, 12, path.stat().st_size)


def test_a_mapper_job_reading_text_blocks_is_refused(tmp_path):
    job = tmp_path / "blocks_mapper.py"
    job.write_text("input_format = 'text_blocks'\n\ndef mapper(key, line):\n    yield line, 1\n")
    text = tmp_path / "in.txt"
    text.write_text("a b\n")
    result = run_cli("run", job, text, "-o", tmp_path / "out", "--workers", "1")
    assert result.returncode == 2
    assert "input_format 'text_blocks' hands map_split(blocks) whole blocks of lines" in result.stderr
    assert "use input_format = 'text'" in result.stderr and "Traceback" not in result.stderr
