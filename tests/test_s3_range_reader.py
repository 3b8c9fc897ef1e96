"""RangeReader, the remote split reader, on fsspec's in-memory filesystem with tiny ranges: every
line is read by exactly one split, whatever the split size and however long the lines."""

import random

import pytest

from mrengine import inputs, storage

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_ranges(monkeypatch):
    monkeypatch.setattr(storage, "RANGE_BLOCK", 7)
    monkeypatch.setattr(storage, "RANGE_TAIL", 2)


@pytest.mark.parametrize("seed", range(3))
def test_every_line_read_once(tiny_ranges, seed):
    rng = random.Random(seed)
    lines = ["x" * rng.choice([0, 1, 2, 5, 9, 30]) + str(i) for i in range(200)]
    data = ("\n".join(lines) + ("\n" if seed else "")).encode()  # seed 0: no final newline
    url = f"memory://range-reader-{seed}/data.txt"
    fs, path = storage.filesystem(url)
    fs.pipe_file(path, data)
    try:
        (f,) = inputs.list_inputs([url])
        for split_size in (1, 3, 8, 50, 1000):
            got = [line for split in inputs.make_splits([f], split_size)
                   for _, _, chunk_lines in inputs.iter_text_lines(split, None) for line in chunk_lines]
            assert got == lines, split_size
    finally:
        fs.rm(path)


def test_reads_stop_near_the_split_end(tiny_ranges):
    fs, path = storage.filesystem("memory://range-reader-end/data.txt")
    fs.pipe_file(path, b"aaaa\nbbbbbbbbbbbbbbbbbbbb\ncc\n")
    try:
        with storage.open_range(fs, path, end=8) as f:
            f.seek(2)
            assert f.read(100) == b"aa\nbbb"  # one block, cut at the split's end
            assert f.read(100) == b"bb"  # then the tail: 2 bytes, doubling
            assert f.read(100) == b"bbbb"
            assert f.tell() == 14
    finally:
        fs.rm(path)
