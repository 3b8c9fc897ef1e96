"""The sampled heaviest keys of a map output partition (`shuffle.heavykeys`), through the run writer."""

import io
import random
from collections import Counter

import numpy as np
import pytest

from mrengine.shuffle.buffer import MapOutputBuffer
from mrengine.shuffle.heavykeys import DISPLAY_CHARS, KEPT, STRIDE, TOP, KeySampler, RunningTop, display, merge
from mrengine.shuffle.partition import checked_partitioner
from mrengine.shuffle.runs import write_segment


def sampled(pairs) -> list:
    sampler = KeySampler()
    write_segment(io.BytesIO(), pairs, 0, sampler=sampler)
    return sampler.top()


def test_a_hot_key_leads_by_records_and_bytes_and_the_summary_stays_bounded():
    pairs = sorted([(f"k{i:05d}", 1) for i in range(20_000)] + [("hot", "v" * 50)] * 3000 + [("warm", 1)] * 400)
    top = sampled(pairs)
    assert top[0][0] == "'hot'" and abs(top[0][1] - 3000) <= STRIDE
    assert top[1][0] == "'warm'" and abs(top[1][1] - 400) <= STRIDE
    assert top[0][2] > top[1][2] > 0
    assert len(top) <= 2 * TOP


def test_keys_of_any_type_are_told_apart_by_their_encoding_and_shown_short():
    top = sampled([(1, "a")] * 64 + [(1.0, "a")] * 32 + [(np.arange(3), 0)] * 32 + [("x" * 500, 0)] * 32)
    assert top[0][:2] == ["1", 64]
    assert sorted(k for k, _, _ in top[1:]) == sorted(["1.0", "array([0, 1, 2])", display("x" * 500)])
    assert len(display("x" * 500)) == DISPLAY_CHARS


def test_a_reducers_keys_add_up_over_the_maps():
    one = sampled([("a", 0)] * 160 + [("b", 0)] * 64)
    two = sampled([("b", 0)] * 320)
    assert [(row["key"], row["records"]) for row in merge([one, two])] == [("'b'", 384), ("'a'", 160)]


def test_a_masters_running_tables_sum_as_merge_does_and_stay_bounded():
    one = sampled([("a", 0)] * 160 + [("b", 0)] * 64)
    two = sampled([("b", 0)] * 320)
    running = RunningTop(2)
    running.add([one, []])
    running.add([two, one])
    assert running.top(0) == merge([one, two]) and running.top(1) == merge([one])
    # Many maps, each with a long tail of its own and the same hot key: the tables stay small, and the
    # hot key is counted in full.
    many = RunningTop(1)
    for m in range(200):
        many.add([[["'hot'", 100, 1000]] + [[f"'tail{m}-{i}'", 32, 50] for i in range(2 * TOP)]])
    assert len(many._tables[0]) <= KEPT
    assert many.top(0)[0] == {"key": "'hot'", "records": 200 * 100, "bytes": 200 * 1000}


def test_a_map_output_merged_from_many_spills_is_sampled_once_per_partition(tmp_path):
    partitions = 3
    buffer = MapOutputBuffer(partitions, checked_partitioner(None, partitions), None, 4096, str(tmp_path), Counter())
    pairs = [("hot", i) for i in range(4000)] + [(f"k{i}", i) for i in range(4000)]
    random.Random(7).shuffle(pairs)
    buffer.collect([p] for p in pairs)
    buffer.close(str(tmp_path / "map.out"))
    assert len(buffer.spills) > 5  # the merge path, not one in-memory sort
    [hot] = [p for p in range(partitions) if buffer.heavy_keys[p] and buffer.heavy_keys[p][0][0] == "'hot'"]
    assert buffer.heavy_keys[hot][0][1] == pytest.approx(4000, abs=STRIDE)
    assert all(len(keys) <= 2 * TOP for keys in buffer.heavy_keys)
