"""One total order over every key type (mrengine/shuffle/order.py): keys of any mix of types sort and
group exactly, whatever the split layout, spills or combiner, and both runners write the same bytes;
keys all of one plain type keep Python's own order."""

from __future__ import annotations

import collections
import enum
import json
import math
import os
import random

import numpy as np
import pytest

from conftest import TEST_JOBS, part_files, read_tsv, reference_wordcount, run_cli, SAMPLE_TEXT
from mrengine import serde
from mrengine.job import load_job
from mrengine.shuffle.order import sort_key
from mrengine.shuffle.partition import stable_partition
from spark_helpers import RUN_TIMEOUT, assert_same_output, run_spark

ANY_KEYS = os.path.join(TEST_JOBS, "any_keys.py")
TOP_WORDS = os.path.join(TEST_JOBS, "top_words.py")
BOOK = os.path.join(SAMPLE_TEXT, "kjv-new-testament.txt")

# Every key type, in the documented order.
ORDERED = [
    None, False, np.False_, True, np.True_,
    -math.inf, -(2**80), -1.5, -1, -0.0, 0, 0.0, np.float32(0.0), np.int64(0), np.int8(0),
    1, 1.0, np.int64(1), 2**80, math.inf, math.nan,
    "", "B", "a", "ab", "é", "😀",
    b"", b"\x00", b"a",
    [], [None], [1], [1, 2], [2], [" "],
    (), (1,), (1, "a"), (1, "b"), (1.0,), (2,), ("a",),
    {}, {"a": 1}, {"a": 2}, {"b": 0},
    np.array([1.5]), np.array([[1]], dtype=np.int16), np.array([0, 5], dtype=np.int16), np.array([1, 2], dtype=np.int16),
    np.datetime64("2026-01-01"), np.complex64(1j),  # other numpy scalars: by dtype, then bytes
]


def _encoded(keys) -> list[bytes]:
    return [serde.dumps(k) for k in keys]


def test_every_key_type_sorts_in_the_documented_order():
    for seed in range(5):
        shuffled = list(ORDERED)
        random.Random(seed).shuffle(shuffled)
        assert _encoded(sorted(shuffled, key=sort_key)) == _encoded(ORDERED)


class One(enum.IntEnum):
    ONE = 1


def test_keys_are_the_same_exactly_when_they_encode_the_same():
    Point = collections.namedtuple("Point", "x y")
    keys = ORDERED + [
        One.ONE, float("nan"), -float("nan"), Point(1, "a"), collections.OrderedDict(a=1), {"a": 1, "b": 2},
        {"b": 2, "a": 1}, np.array([1, 2], dtype=np.int16), np.array([1, 2], dtype=np.int32), np.int32(1),
        np.float64(1.0), 1.0 + 2**-52, np.str_("a"), np.bytes_(b"a"),
    ]
    for a in keys:
        for b in keys:
            assert (sort_key(a) == sort_key(b)) == (serde.dumps(a) == serde.dumps(b)), (a, b)


def test_numpy_strings_are_their_str_and_bytes():
    assert type(serde.loads(serde.dumps(np.str_("a")))) is str and sort_key(np.str_("a")) == sort_key("a")
    assert serde.dumps(np.bytes_(b"a")) == serde.dumps(b"a")


def test_keys_of_one_plain_type_keep_pythons_order():
    rng = random.Random(3)
    strs = ["".join(rng.choice("aAzé😀 ") for _ in range(rng.randrange(4))) for _ in range(2000)]
    ints = [rng.randrange(-2**70, 2**70) >> rng.randrange(70) for _ in range(2000)]
    byts = [bytes(rng.randrange(256) for _ in range(rng.randrange(3))) for _ in range(2000)]
    tuples = [(rng.choice("ab"), rng.randrange(3), rng.choice([b"x", b"y"])) for _ in range(2000)]
    for keys in (strs, ints, byts, tuples):
        assert sorted(keys, key=sort_key) == sorted(keys)


def test_merge_passes_over_runs_of_mixed_kinds_keep_the_order_and_run_order(tmp_path):
    from collections import Counter
    from mrengine.shuffle.merge import group_by_key, merge_runs
    from mrengine.shuffle.order import kind_of
    from mrengine.shuffle.runs import Run, write_segment

    rng = random.Random(5)
    pool = [None, 1, 1.0, True, -0.0, 0.0, "a", "b", b"a", (1, "a"), (1.0, "a"), [2], 2**70]
    runs, everything = [], []
    for r in range(40):
        keys = [rng.choice(pool[:3] if r % 3 else pool) for _ in range(30)] if r % 2 else [rng.choice("ab") for _ in range(30)]
        pairs = sorted(((k, (r, i)) for i, k in enumerate(keys)), key=lambda p: sort_key(p[0]))
        path = tmp_path / f"{r}.run"
        with open(path, "wb") as out:
            segment = write_segment(out, pairs, 0, kind_of(k for k, _ in pairs))
        runs.append(Run(str(path), *segment))
        everything += pairs
    counters = Counter()
    merged = merge_runs(runs, None, str(tmp_path), counters, "passes", factor=6)
    assert counters["passes"] >= 2
    groups = [(key, list(values)) for key, values in group_by_key(merged)]
    expected = sorted(everything, key=lambda p: sort_key(p[0]))  # stable: run order, then emit order
    assert [serde.dumps([k, v]) for k, vs in groups for v in vs] == [serde.dumps(list(p)) for p in expected]
    assert len(groups) == len({serde.dumps(k) for k, _ in everything})


# ---------------------------------------------------------------- through the CLI


def test_a_none_key_gathers_everything_for_one_reducer(tmp_path):
    out = tmp_path / "out"
    result = run_cli("run", TOP_WORDS, BOOK, "-o", out, "--split-size", "256k")
    assert result.returncode == 0, result.stderr
    counts = reference_wordcount([BOOK])
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [os.path.basename(p) for p in part_files(out)] == ["part-00000"]
    assert (out / "part-00000").read_text() == "".join(f"{w}\t{n}\n" for w, n in top)


def _words_file(tmp_path) -> str:
    rng = random.Random(11)
    vocabulary = ["a", "an", "the", "cat", "Über", "ramen", "kitten", "é", "dog", "seventeen"]
    path = tmp_path / "words.txt"
    path.write_text("".join(" ".join(rng.choice(vocabulary) for _ in range(8)) + "\n" for _ in range(2500)))
    return str(path)


def _expected_counts(text: str) -> dict[bytes, int]:
    mapper = load_job(ANY_KEYS).steps[0].mapper
    counts: collections.Counter = collections.Counter()
    with open(text, encoding="utf-8") as f:
        for line in f:
            for key, n in mapper(text, line.rstrip("\n")):
                counts[serde.dumps(key)] += n
    return counts


def _read_parts(out) -> list[list]:
    parts = []
    for path in part_files(out):
        with open(path, "rb") as f:
            parts.append([tuple(pair) for pair in serde.unpacker(f)])
    return parts


def _with_combiner(tmp_path) -> str:
    job = tmp_path / "any_keys_combined.py"
    with open(ANY_KEYS, encoding="utf-8") as f:
        job.write_text(f.read() + "\n\ncombiner = reducer\n")
    return str(job)


def test_mixed_keys_sort_and_group_exactly_whatever_the_layout(tmp_path):
    text = _words_file(tmp_path)
    expected = _expected_counts(text)
    assert len(expected) > 50
    runs = {
        "whole": (ANY_KEYS, ()),
        "splits and spills": (ANY_KEYS, ("--split-size", "4k", "--sort-buffer-mb", "1")),
        "combiner, splits and spills": (_with_combiner(tmp_path), ("--split-size", "4k", "--sort-buffer-mb", "1")),
    }
    outputs = {}
    for name, (job, options) in runs.items():
        out = tmp_path / name.replace(" ", "-").replace(",", "")
        result = run_cli("run", job, text, "-o", out, "--reducers", "3", "--workers", "2", *options)
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = {os.path.basename(p): open(p, "rb").read() for p in part_files(out)}
        if name == "splits and spills":
            counters = {(g, n): v for g, n, v in json.loads((out / "_SUCCESS").read_text())["counters"]}
            assert counters["mrengine", "map_spills"] > 24, name  # more than one spill per map task
        parts = _read_parts(out)
        seen = {}
        for p, pairs in enumerate(parts):
            keys = [k for k, _ in pairs]
            assert all(sort_key(a) < sort_key(b) for a, b in zip(keys, keys[1:])), name  # sorted, each key once
            for key, count in pairs:
                assert stable_partition(key, 3) == p
                seen[serde.dumps(key)] = count
        assert seen == expected, name
    assert outputs["whole"] == outputs["splits and spills"] == outputs["combiner, splits and spills"]


def test_one_reducer_writes_every_key_in_the_one_order(tmp_path):
    text = _words_file(tmp_path)
    out = tmp_path / "out"
    result = run_cli("run", ANY_KEYS, text, "-o", out, "--reducers", "1", "--split-size", "16k")
    assert result.returncode == 0, result.stderr
    [pairs] = _read_parts(out)
    keys = [k for k, _ in pairs]
    assert _encoded(keys) == _encoded(sorted(keys, key=sort_key))
    assert keys[0] is None and keys[1:3] == [False, True]
    firsts = [k for k in keys if type(k) in (int, float) and k == 1]
    assert [type(k) for k in firsts] == [int, float]  # 1 and 1.0, each its own key, the int first
    nans = [k for k in keys if isinstance(k, float) and math.isnan(k)]
    zeros = [k for k in keys if type(k) is float and k == 0]
    assert len(nans) == 1 and [math.copysign(1, z) for z in zeros] == [-1, 1]


@pytest.mark.spark
@pytest.mark.parametrize("job", ["top_words", "any_keys"])
def test_spark_writes_the_native_bytes(spark_runner, tmp_path, job):
    path, text = (TOP_WORDS, BOOK) if job == "top_words" else (_with_combiner(tmp_path), _words_file(tmp_path))
    native = run_cli("run", path, text, "-o", tmp_path / "native", "--split-size", "64k", "--reducers", "3",
                     "--workers", "2", timeout=RUN_TIMEOUT)
    assert native.returncode == 0, native.stderr
    run_spark(spark_runner, path, tmp_path / "spark", text, split_size=64 << 10, reducers=3)
    assert_same_output(tmp_path / "native", tmp_path / "spark")
    if job == "top_words":
        assert len(read_tsv(tmp_path / "spark")) == 10
