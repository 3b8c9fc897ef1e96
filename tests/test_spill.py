"""Spills, merges and corrupt intermediate data, end to end through `mrengine run` (2 workers).

Outputs are compared with a sequential word count of the same text and, for the tiny-buffer runs,
byte for byte with a run whose buffer holds everything. Engine counters come from the `_SUCCESS`
manifest. Memory is watched from outside: the peak RSS (VmHWM) of every process of the run.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mrengine.shuffle.merge import MERGE_FACTOR

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
BOOKS = ROOT / "sample_data" / "text"
JOBS = ROOT / "tests" / "jobs"
RUN_TIMEOUT = 180
WAIT_TIMEOUT = 120

_spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def one_file(tmp_path_factory) -> Path:
    """The sample text (4.4 MB) as one file: one split, so one map task makes every spill."""
    path = tmp_path_factory.mktemp("input") / "kjv.txt"
    path.write_bytes(b"".join(p.read_bytes() for p in sorted(BOOKS.glob("*.txt"))))
    return path


@pytest.fixture(scope="module")
def reference() -> Counter:
    counts = Counter()
    for path in sorted(BOOKS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            counts.update(line.split())
    return counts


def mrengine_run(job, inputs, out, *options, **popen) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mrengine", "run", str(job), *map(str, inputs), "-o", str(out), "--workers", "2", *options]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_ok(job, inputs, out, *options) -> str:
    proc = mrengine_run(job, inputs, out, *options)
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return err


def counters(out: Path) -> Counter:
    manifest = json.loads((out / "_SUCCESS").read_text())
    return Counter({name: n for group, name, n in manifest["counters"] if group == "mrengine"})


def word_counts(out: Path) -> Counter:
    counts = Counter()
    for part in sorted(out.glob("part-*")):
        for line in part.read_text(encoding="utf-8").splitlines():
            word, n = line.rsplit("\t", 1)
            assert word not in counts
            counts[word] = int(n)
    return counts


def parts(out: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(out.glob("part-*"))]


@pytest.mark.parametrize("job", [JOBS / "spill_function_combiner_wc.py", ROOT / "jobs" / "wordcount.py",
                                 JOBS / "spill_plain_wc.py"], ids=["combiner", "fold", "no-combiner"])
def test_a_one_mb_sort_buffer_spills_and_merges_in_passes_without_changing_the_output(tmp_path, one_file, reference, job):
    roomy, tiny = tmp_path / "roomy", tmp_path / "tiny"
    run_ok(job, [one_file], roomy, "--sort-buffer-mb", "1000")
    run_ok(job, [one_file], tiny, "--sort-buffer-mb", "1")
    assert parts(tiny) == parts(roomy)
    assert word_counts(tiny) == reference
    big, small = counters(roomy), counters(tiny)
    assert big["map_spills"] == 0
    assert small["map_output_records"] == sum(reference.values())
    if job.name == "wordcount.py":
        # A fold holds one running count per word, so it spills far less often than a list per word;
        # what it spills is already combined, and merging the spills combines again.
        assert small["map_spills"] >= 2
        assert small["spilled_records"] < small["map_output_records"] / 3
        assert small["reduce_input_records"] < small["spilled_records"]
        assert small["combine_input_records"] > small["combine_output_records"]
        return
    assert small["map_spills"] > MERGE_FACTOR and small["map_merge_passes"] >= 1  # spills merged in several passes
    if job.name == "spill_function_combiner_wc.py":
        # The combiner ran before each spill (fewer records spilled than the mapper emitted) and again
        # while merging the spills (fewer records shuffled than spilled).
        assert small["spilled_records"] < small["map_output_records"] / 3
        assert small["reduce_input_records"] < small["spilled_records"] / 2
        assert small["combine_input_records"] > small["combine_output_records"]
    else:
        assert small["spilled_records"] == small["reduce_input_records"] == small["map_output_records"]


def test_a_reducer_merges_many_map_outputs_in_passes(tmp_path, reference):
    out = tmp_path / "out"
    run_ok(JOBS / "spill_plain_wc.py", [BOOKS], out, "--split-size", "128k", "--reducers", "1")  # 35 maps
    c = counters(out)
    assert c["map_input_records"] == 31102
    assert c["reduce_merge_passes"] >= 1  # more map outputs than MERGE_FACTOR
    assert word_counts(out) == reference


def test_memory_stays_bounded_when_map_output_is_many_times_the_sort_buffer(tmp_path, one_file):
    out = tmp_path / "out"
    proc = mrengine_run(JOBS / "spill_wide.py", [one_file], out, "--sort-buffer-mb", "8", "--reducers", "1")
    with bench.TreePeak(proc.pid) as peak:
        try:
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    c = counters(out)
    # 820,736 distinct pairs of about 200 bytes of Python objects each: 160 MB held at once, 20 times
    # the buffer; an unbounded map task peaks above 220 MB.
    assert c["map_output_records"] == 820736 and c["map_spills"] >= 10
    largest, role = peak.largest()
    assert largest < 110 * 2**20, f"{role} peaked at {largest / 2**20:.0f} MB"
    assert c["reduce_output_records"] == c["reduce_input_groups"] == 173666


def test_a_corrupt_map_output_block_is_caught_and_its_map_task_run_again(tmp_path, reference):
    """Map task 1 waits while map task 0 finishes; the test flips a byte in map 0's output file; the
    reducer's checksum catches it, and the master makes map 0's output again instead of failing or
    reducing wrong data."""
    books = sorted(BOOKS.glob("*.txt"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_bytes(b"".join(p.read_bytes() for p in books[:2]))
    (inputs / "b.txt").write_bytes(books[2].read_bytes())
    release, scratch, out = tmp_path / "release", tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    proc = mrengine_run(JOBS / "spill_hold_wc.py", [inputs], out, "--reducers", "1", "-p", "hold=b.txt",
                        "-p", f"release={release}", env={**os.environ, "TMPDIR": str(scratch)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not any("map 1/2" in line for line in lines):  # map 0 is done, map 1 is held
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        (map_out,) = scratch.glob("mrengine-*/work/worker-*/job*/m00000.0/map.out")
        data = bytearray(map_out.read_bytes())
        data[len(data) // 2] ^= 0x40
        map_out.write_bytes(data)
        release.touch()
        proc.wait(RUN_TIMEOUT)
    finally:
        proc.kill()
        reader.join(5)
    err = "".join(lines)
    assert proc.returncode == 0, err
    attempts = int(re.search(r"tasks: 2 map, 1 reduce \((\d+) attempts\)", err).group(1))
    assert attempts >= 5  # map 0 and the reduce ran twice
    assert word_counts(out) == reference
