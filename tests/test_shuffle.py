"""The shuffle's parts on real files: the block format, multi-pass merges, the map output buffer.

End-to-end behaviour (through `mrengine run`) is in test_spill.py; these pin down the pieces it rests
on with inputs too awkward to build through a job.
"""

import os
import tracemalloc
from collections import Counter

import numpy as np
import psutil
import pytest

from mrengine.combiners import Fold, max_values, min_values, sum_values
from mrengine.errors import FetchFailedError, JobDefinitionError, StorageError
from mrengine.shuffle.buffer import MapOutputBuffer
from mrengine.shuffle.merge import MERGE_FACTOR, merge_runs
from mrengine.shuffle.partition import checked_partitioner, stable_partition
from mrengine.shuffle.runs import BLOCK_BYTES, CorruptRunError, Run, read_run, write_segment

pytestmark = pytest.mark.timeout(60)

WORDS = open(os.path.join(os.path.dirname(__file__), "..", "sample_data", "text", "kjv-new-testament.txt"),
             encoding="utf-8").read().split()


def write_run(path, pairs, map_index=-1) -> Run:
    with open(path, "wb") as out:
        segment = write_segment(out, pairs, 0)
    return Run(str(path), *segment, map_index)


def sum_combiner(key, values):
    yield key, sum(values)


# ---------------------------------------------------------------- the block format


def test_records_of_every_type_round_trip_through_compressed_blocks(tmp_path):
    pairs = [
        (f"key-{i:06d}", [i, 2**70 + i, -i / 3, "ünïcödé ✓", b"\x00\xff", (i, "t"), None, True, {"k": [i]}])
        for i in range(20000)
    ]
    pairs += [("z-array", np.arange(12, dtype=np.float32).reshape(3, 4)), ("z-scalar", np.int16(-7))]
    run = write_run(tmp_path / "r.run", pairs)
    assert run.records == len(pairs)
    back = list(read_run(run))
    assert [k for k, _ in back] == [k for k, _ in pairs]
    assert back[:-2] == pairs[:-2]
    assert type(back[5][1][5]) is tuple and type(back[5][1][4]) is bytes
    assert back[-2][1].dtype == np.float32 and (back[-2][1] == pairs[-2][1]).all()
    assert back[-1][1] == -7 and back[-1][1].dtype == np.int16
    raw = sum(len(repr(p)) for p in pairs)
    assert os.path.getsize(run.path) < raw / 3  # compressed, and in many blocks of bounded size
    assert os.path.getsize(run.path) > 8 * BLOCK_BYTES / 10


def test_segments_sit_side_by_side_in_one_file(tmp_path):
    path = tmp_path / "two.run"
    with open(path, "wb") as out:
        first = write_segment(out, [("a", 1), ("b", 2)], out.tell())
        empty = write_segment(out, [], out.tell())
        second = write_segment(out, [(f"w{i}", i) for i in range(5000)], out.tell())
    assert empty.length == 0 and empty.records == 0
    assert list(read_run(Run(str(path), *first))) == [("a", 1), ("b", 2)]
    assert list(read_run(Run(str(path), *empty))) == []
    assert list(read_run(Run(str(path), *second))) == [(f"w{i}", i) for i in range(5000)]


@pytest.mark.parametrize("where", ["payload", "header", "truncated"])
def test_a_corrupt_block_is_detected_and_names_its_map_task(tmp_path, where):
    run = write_run(tmp_path / "r.run", [(w, 1) for w in WORDS[:50000]], map_index=7)
    data = bytearray(open(run.path, "rb").read())
    if where == "payload":
        data[len(data) // 2] ^= 0x01
    elif where == "header":
        data[0] ^= 0x01
    else:
        data = data[:-10]
    with open(run.path, "wb") as f:
        f.write(data)
    with pytest.raises(CorruptRunError) as err:
        list(read_run(run))
    assert isinstance(err.value, FetchFailedError)  # so the master re-runs the map that made it
    assert err.value.args[1] == 7
    assert run.path in str(err.value)
    with pytest.raises(StorageError, match="checksum|truncated"):  # a file of this task's own: no map to blame
        list(read_run(run._replace(map_index=-1)))


# ---------------------------------------------------------------- merging


def test_many_runs_merge_in_passes_with_bounded_open_files_keeping_value_order(tmp_path):
    runs = []
    for r in range(3 * MERGE_FACTOR + 5):
        pairs = sorted((f"k{(r * 7 + i * 13) % 500:03d}", (r, i)) for i in range(60))
        runs.append(write_run(tmp_path / f"in-{r:03d}.run", pairs))
    expected = sorted(((k, v) for r in runs for k, v in read_run(r)), key=lambda p: p[0])  # stable: run order
    counters = Counter()
    merged = merge_runs(runs, None, str(tmp_path), counters, "passes")
    assert counters["passes"] == 1  # 101 runs -> 32 in one pass
    me = psutil.Process()
    open_before = len(me.open_files())
    out = []
    for i, pair in enumerate(merged):
        out.append(pair)
        if i == 100:
            assert len(me.open_files()) - open_before <= MERGE_FACTOR
    assert out == expected
    assert sorted(os.listdir(tmp_path)) == [f"in-{r:03d}.run" for r in range(len(runs))]  # its own files are gone


def test_a_merge_past_factor_squared_takes_two_passes_and_combines_in_between(tmp_path):
    runs = [write_run(tmp_path / f"{r}.run", [("a", 1), (f"b{r % 3}", 1)]) for r in range(9 * 9 + 1)]
    counters = Counter()
    merged = list(merge_runs(runs, sum_combiner, str(tmp_path), counters, "passes", factor=9))
    assert counters["passes"] == 2
    totals = Counter()
    for k, v in merged:
        totals[k] += v
    assert totals == {"a": 82, "b0": 28, "b1": 27, "b2": 27}
    assert len(merged) < 2 * 82 and counters["combine_input_records"] > counters["combine_output_records"]


# ---------------------------------------------------------------- the map output buffer


def buffered(tmp_path, pairs, budget, combiner=sum_combiner, partitions=3):
    counters = Counter()
    fold = combiner.op if isinstance(combiner, Fold) else None
    buf = MapOutputBuffer(partitions, checked_partitioner(None, partitions), combiner, budget, str(tmp_path), counters,
                          fold=fold, fold_error=lambda exc, key: RuntimeError(f"fold failed on {key!r}: {exc}"))
    buf.collect(([p] for p in pairs))
    path = tmp_path / "map.out"
    segments = buf.close(str(path))
    parts = [list(read_run(Run(str(path), *s))) for s in segments]
    assert sorted(os.listdir(tmp_path)) == ["map.out"]  # spills and merge files are gone
    return parts, counters


@pytest.mark.parametrize("combiner", [sum_combiner, sum_values, None], ids=["combiner", "fold", "no-combiner"])
def test_a_tiny_budget_spills_often_and_gives_the_in_memory_result(tmp_path, combiner):
    pairs = [(w, 1) for w in WORDS]
    (tmp_path / "big").mkdir()
    (tmp_path / "tiny").mkdir()
    in_memory, c_big = buffered(tmp_path / "big", pairs, 1 << 30, combiner)
    spilled, c_tiny = buffered(tmp_path / "tiny", pairs, 64 << 10, combiner)
    assert c_big["map_spills"] == 0 and c_tiny["map_spills"] > 2 * MERGE_FACTOR
    assert c_tiny["map_merge_passes"] >= 1
    for p, part in enumerate(spilled):
        assert all(stable_partition(k, 3) == p for k, _ in part)
        assert [k for k, _ in part] == sorted(k for k, _ in part)
    totals = Counter()
    for part in spilled:
        for k, v in part:
            totals[k] += v
    assert totals == Counter(WORDS)
    assert c_tiny["map_output_records"] == c_big["map_output_records"] == len(WORDS)
    if combiner is None:
        assert spilled == in_memory
        assert c_tiny["spilled_records"] == len(WORDS)
    else:
        assert spilled == in_memory  # one value per key either way
        assert c_tiny["spilled_records"] < len(WORDS)  # combined before each spill...
        assert sum(map(len, spilled)) < c_tiny["spilled_records"]  # ...and again while merging


@pytest.mark.parametrize("combiner", [sum_combiner, sum_values, None], ids=["combiner", "fold", "no-combiner"])
def test_the_buffer_holds_about_its_budget(tmp_path, combiner):
    budget = 1 << 20
    pairs = ((f"{w}-{i}", i) for i, w in enumerate(WORDS[:60000]))  # all distinct: the combiner cannot help
    counters = Counter()
    buf = MapOutputBuffer(2, checked_partitioner(None, 2), combiner, budget, str(tmp_path), counters,
                          fold=combiner.op if isinstance(combiner, Fold) else None)
    tracemalloc.start()
    try:
        buf.add_all(pairs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    buf.close(str(tmp_path / "map.out"))
    assert counters["map_spills"] >= 5  # the data is several times the budget...
    assert peak < 2 * budget  # ...and memory stays near it (held as a whole, the pairs take 9 MB)


def test_a_single_value_skips_the_combiner_and_a_key_changing_combiner_is_refused(tmp_path):
    calls = []

    def counting(key, values):
        calls.append(key)
        yield key, sum(values)

    (tmp_path / "a").mkdir()
    parts, counters = buffered(tmp_path / "a", [("x", 1), ("y", 2), ("x", 3)], 1 << 20, counting, partitions=1)
    assert parts == [[("x", 4), ("y", 2)]] and calls == ["x"]
    assert counters["combine_input_records"] == 2 and counters["combine_output_records"] == 1

    def renaming(key, values):
        yield key.upper(), sum(values)

    (tmp_path / "b").mkdir()
    with pytest.raises(JobDefinitionError, match="must yield the key it is given"):
        buffered(tmp_path / "b", [("x", 1), ("x", 2)], 1 << 20, renaming, partitions=1)


def map_output(tmp_path, feed, combiner, partitions=3):
    """The bytes of the map output file a buffer writes after `feed(buffer)`, and its counters."""
    tmp_path.mkdir()
    counters = Counter()
    buf = MapOutputBuffer(partitions, checked_partitioner(None, partitions), combiner, 1 << 30, str(tmp_path), counters)
    feed(buf)
    buf.close(str(tmp_path / "map.out"))
    return (tmp_path / "map.out").read_bytes(), counters


@pytest.mark.parametrize("combiner", [sum_combiner, None], ids=["combiner", "no-combiner"])
@pytest.mark.parametrize("mapping", [Counter(WORDS), {1: 2, "a": 3, (1, 2): 4, 1.5: 5, b"b": 6}], ids=["words", "mixed-keys"])
def test_a_mapping_is_written_as_its_pairs_are(tmp_path, combiner, mapping):
    """A map_split's Counter is held as it is, not regrouped, and gives the same map output."""
    pairs = list(mapping.items())
    as_pairs = map_output(tmp_path / "pairs", lambda buf: buf.collect([pairs]), combiner)
    as_mapping = map_output(tmp_path / "mapping", lambda buf: buf.add_all(mapping.items()), combiner)
    assert as_mapping == as_pairs and as_pairs[1]["map_output_records"] == len(mapping)

    def mapping_then_more(buf):
        buf.add_all(mapping.items())
        buf.collect([pairs[:3]])

    more = map_output(tmp_path / "more", mapping_then_more, combiner)
    assert more == map_output(tmp_path / "all", lambda buf: buf.collect([pairs, pairs[:3]]), combiner)


@pytest.mark.parametrize("fold", [sum_values, min_values, max_values], ids=lambda f: f.__name__)
def test_a_fold_gives_what_its_function_gives_as_a_combiner(tmp_path, fold):
    pairs = [(w, len(w) * (i % 7 - 3)) for i, w in enumerate(WORDS[:50000])]

    def as_function(key, values):  # the same fold, hidden from the buffer behind a plain function
        yield from fold(key, values)

    (tmp_path / "fold").mkdir()
    (tmp_path / "function").mkdir()
    folded, c_fold = buffered(tmp_path / "fold", pairs, 1 << 30, fold)
    combined, _ = buffered(tmp_path / "function", pairs, 1 << 30, as_function)
    assert folded == combined
    assert c_fold["map_output_records"] == len(pairs) == c_fold["combine_input_records"]
    assert c_fold["combine_output_records"] == len(set(WORDS[:50000]))


def test_a_fold_keeps_keys_that_are_equal_but_not_the_same_apart(tmp_path):
    # 1, 1.0 and True are equal as dict keys but are three keys; an unhashable key comes last
    pairs = [(1, 10), (2, 1), (1, 5), (1.0, 100), (True, 1000), (1, 1), ([1], 7), ([1], 8), ("a", 1), ("a", 2)]
    parts, counters = buffered(tmp_path, pairs, 1 << 30, sum_values, partitions=1)
    assert sorted(parts[0], key=repr) == sorted([(1, 16), (2, 1), (1.0, 100), (True, 1000), ([1], 15), ("a", 3)], key=repr)
    assert counters["map_output_records"] == len(pairs)


def test_a_folding_error_names_the_key_and_is_not_taken_for_a_new_key(tmp_path):
    def picky(a, b):
        if b == 3:
            raise KeyError("no threes")
        return a + b

    with pytest.raises(RuntimeError, match="fold failed on 'x': 'no threes'"):
        buffered(tmp_path, [("x", 1), ("y", 3), ("x", 3)], 1 << 30, Fold(picky), partitions=1)
