"""Keys and values keep their types through the shuffle; keys sort in the one order (see tests/test_key_order.py)."""

import json
import os

from conftest import SAMPLE_TEXT, TEST_JOBS, part_files, run_cli
from mrengine import serde
from mrengine.shuffle.partition import stable_partition

import numpy as np
import subprocess
import sys


def _jsonl(out):
    rows = []
    for part in part_files(out):
        rows.append([json.loads(line) for line in open(part, encoding="utf-8")])
    return rows


def test_key_and_value_types_round_trip(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a bb ccc\nbb dddd eeeee\n")
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "keytypes.py"), text, "-o", out)
    assert result.returncode == 0, result.stderr
    tuples, ints, bigs, byts = _jsonl(out)
    assert all(r[1]["key_type"] == "tuple" for r in tuples)
    assert [r[0][1] for r in tuples] == [[1, "a"], [2, "b"], [3, "c"], [4, "d"], [5, "e"]]
    assert [r[0][1] for r in ints] == [1, 2, 3, 4, 5]
    assert all(r[1]["value_types"] == ["ndarray"] for r in ints)
    assert ints[1][1]["total"] == 2 * (1 + 2)
    assert [r[0][1] for r in bigs] == [2**100 + n for n in (1, 2, 3, 4, 5)]
    assert all(r[1] == {"key_type": "int", "value_types": ["float32"], "total": r[1]["total"]} for r in bigs)
    assert all(r[1]["key_type"] == "bytes" for r in byts)


def test_int_keys_sort_numerically(tmp_path):
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "intkeys.py"), SAMPLE_TEXT, "-o", out, "--reducers", "1")
    assert result.returncode == 0, result.stderr
    keys = [int(line.split("\t")[0]) for line in open(out / "part-00000")]
    assert keys == sorted(keys) and len(keys) > 10


def test_keys_of_mixed_types_sort_in_the_one_order(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a\nb\n")
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "mixedkeys.py"), text, "-o", out, "--reducers", "1")
    assert result.returncode == 0, result.stderr
    assert (out / "part-00000").read_text() == "1\t2\na\t1\nb\t1\n"  # numbers before str


def test_serde_round_trips_exact_types():
    values = [(1, ("a", b"b")), [1, [2, (3,)]], 2**100, -(2**70), np.arange(6, dtype=np.int16).reshape(2, 3),
              np.float32(1.5), np.int64(7), {"k": (1, 2), 3: [None, True]}, "ünï", b"\x00\xff", 1.25]
    for v in values:
        back = serde.loads(serde.dumps(v))
        assert type(back) is type(v)
        if isinstance(v, np.ndarray):
            assert back.dtype == v.dtype and (back == v).all()
        else:
            assert back == v


def test_unencodable_value_names_its_type():
    import pytest
    from mrengine.errors import RecordError

    with pytest.raises(RecordError, match="builtins.set"):
        serde.dumps({1, 2})
    with pytest.raises(RecordError, match="frozenset"):
        serde.dumps([1, frozenset()])


def test_partition_is_the_same_in_every_process():
    keys = ["the", "and", ("t", 1), 42, b"raw"]
    here = [stable_partition(k, 7) for k in keys]
    code = ("from mrengine.shuffle.partition import stable_partition as p;"
            "print([p(k, 7) for k in ['the', 'and', ('t', 1), 42, b'raw']])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == str(here)


def test_five_million_values_stream_to_the_reducer(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("one line\n")
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "onekey.py"), text, "-o", out, "--workers", "1",
                     "--sort-buffer-mb", "32", "--reducers", "1", timeout=600)
    assert result.returncode == 0, result.stderr
    key, value = open(out / "part-00000").read().rstrip("\n").split("\t")
    report = json.loads(value)
    n = 5_000_000
    assert report["count"] == n and report["total"] == n * (n - 1) // 2
    assert report["is_iterator"] is True
    # Materialised, 5M ints would take over 180 MB (list slots + int objects); streamed, the
    # reducer's process grows by at most a few blocks.
    assert report["rss_growth"] < 32 * 1024 * 1024, report
    assert "onekey/values = 5000000" in result.stderr
