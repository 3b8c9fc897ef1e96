"""The sort orders a step can ask for, end to end through `mrengine run`: map-only, secondary sort,
key fields, total order (and TeraSort with its generator and validator)."""

import collections
import json
import os
import random
import re
import subprocess
import sys

import pytest

from conftest import part_files, read_bytes, run_cli

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)
JOBS = os.path.join(HERE, "jobs")


def _lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{rng.randrange(200):03d}" for _ in range(n * 6)]
    return [" ".join(words[i * 6:i * 6 + rng.randrange(1, 7)]) for i in range(n)]


@pytest.fixture(scope="module")
def text_input(tmp_path_factory):
    """Two files of 3000 lines each; with --split-size 20k they make several splits."""
    d = tmp_path_factory.mktemp("in")
    for name, seed in (("a.txt", 1), ("b.txt", 2)):
        (d / name).write_text("\n".join(_lines(3000, seed)) + "\n")
    return d


def _run(job, inp, out, *extra):
    proc = run_cli("run", os.path.join(JOBS, job), inp, "-o", out, "--workers", "2", "--split-size", "20k", *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def _splits_lines(inp) -> list[list[str]]:
    """Each split's lines, as the line rule cuts 20k splits (the reference for the map-only order)."""
    from mrengine.inputs import TextInput, list_inputs, make_splits

    splits = make_splits(list_inputs([str(inp)]), 20 * 1024)
    return [[v for b in TextInput().read(s, None) for v in b.values] for s in splits]


@pytest.fixture(scope="module")
def map_only_run(text_input, tmp_path_factory):
    """map_only.py run once (with every counter listed), for the tests of what a map-only step writes."""
    out = tmp_path_factory.mktemp("map_only") / "out"
    return _run("map_only.py", text_input, out, "--counters"), out


def test_map_only_writes_one_part_per_map_in_the_mappers_order(text_input, map_only_run):
    proc, out = map_only_run
    splits = _splits_lines(text_input)
    parts = part_files(out)
    assert len(parts) == len(splits) > 2
    for part, lines in zip(parts, splits):
        expected = "".join(f"{w}\t{i}\n" for line in lines for i, w in enumerate(line.split()))
        assert open(part).read() == expected


def test_map_only_has_no_reduce_tasks_and_no_shuffle(text_input, map_only_run):
    """Each map writes its own part: no reduce task runs, nothing is shuffled, and map i's part is part i."""
    proc, out = map_only_run
    maps = len(_splits_lines(text_input))
    assert f"tasks: {maps} map, 0 reduce ({maps} attempts)" in proc.stderr
    assert "mrengine/map_output_records" in proc.stderr
    for name in ("shuffle_bytes", "reduce_input_records", "map_spills", "spilled_records"):
        assert f"mrengine/{name}" not in proc.stderr
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["maps"] == maps and manifest["reduces"] == 0
    report = json.loads((out / "_REPORT.json").read_text())
    assert [t["kind"] for t in report["tasks"]] == ["map"] * maps and report["skew"] == []
    for task in report["tasks"]:
        part = manifest["parts"][f"part-{task['index']:05d}"]
        winner = next(a for a in task["attempts"] if a["state"] == "succeeded")
        assert (winner["records_out"], winner["bytes_out"]) == (part["records"], part["bytes"])
        assert os.path.getsize(out / f"part-{task['index']:05d}") == part["bytes"]


def test_a_map_only_step_feeds_the_next_step(text_input, tmp_path):
    """The same bytes from `mrengine run` and from `run_job` (the in-process runner)."""
    from mrengine.testing import run_job

    proc = _run("map_only_then_count.py", text_input, tmp_path / "out")
    assert "tasks: 12 map, 2 reduce" in proc.stderr  # 6 maps of each step; reduces only in the second
    words = collections.Counter(w.upper() for p in text_input.iterdir() for w in p.read_text().split())
    got = dict(line.rstrip("\n").split("\t") for part in part_files(tmp_path / "out") for line in open(part))
    assert got == {w: str(n) for w, n in words.items()} and words
    local = run_job(os.path.join(JOBS, "map_only_then_count.py"), [str(text_input)], split_size=20 * 1024)
    assert local.parts == read_bytes(tmp_path / "out")


def test_sort_values_delivers_each_keys_values_sorted(text_input, tmp_path):
    _run("sorted_values.py", text_input, tmp_path / "out")
    expected = {}
    for path in sorted(text_input.iterdir()):
        for line in path.read_text().splitlines():
            words = line.split()
            if words:
                expected.setdefault(words[0], []).extend(words[1:])
    got = {}
    for part in part_files(tmp_path / "out"):
        keys = []
        for line in open(part):
            key, value = line.rstrip("\n").split("\t")
            keys.append(key)
            got[key] = value
        assert keys == sorted(keys)
    assert got == {k: " ".join(sorted(v)) for k, v in expected.items()}


def test_partition_fields_keep_a_first_field_in_one_part(text_input, tmp_path):
    _run("field_keys.py", text_input, tmp_path / "out")
    seen = {}
    total = 0
    for part in part_files(tmp_path / "out"):
        keys = [line.split("\t")[0] for line in open(part)]
        assert keys == sorted(keys)
        for key in keys:
            assert seen.setdefault(key.split(".")[0], part) == part, f"{key} in two parts"
        total += len(keys)
    assert len(seen) > 100 and len({p for p in seen.values()}) == 4


def test_total_order_parts_concatenate_sorted(text_input, tmp_path):
    _run("total_order_wc.py", text_input, tmp_path / "out")
    keys = [line.split("\t")[0] for part in part_files(tmp_path / "out") for line in open(part)]
    words = {w for p in text_input.iterdir() for w in p.read_text().split()}
    assert keys == sorted(words)
    sizes = [sum(1 for _ in open(p)) for p in part_files(tmp_path / "out")]
    assert len(sizes) == 4 and min(sizes) > len(words) // 10  # sampled ranges, roughly even


@pytest.mark.parametrize("definition, message", [
    ("num_reducers = 0\ndef mapper(k, v): yield k, v\ndef reducer(k, vs): yield k, 1\n", "map-only"),
    ("total_order = True\npartition_fields = 1\ndef mapper(k, v): yield k, v\n", "can't give both total_order"),
    ("sort_values = 'yes'\ndef mapper(k, v): yield k, v\n", "sort_values must be True or False"),
])
def test_contradictory_sort_options_are_one_paragraph(tmp_path, definition, message):
    job = tmp_path / "job.py"
    job.write_text(definition)
    (tmp_path / "in.txt").write_text("a\n")
    proc = run_cli("run", job, tmp_path / "in.txt", "-o", tmp_path / "out")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def _script(name, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *map(str, args)],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_terasort_sorts_globally(tmp_path):
    """32 MiB of generated records sorted, validated as globally ordered with the input's checksum. Each
    of the two files is a 16 MiB map task whose 16 MB sort buffer spills and merges, as the maps of the
    1 GiB run of docs/PERFORMANCE.md do theirs; the 1 GiB run itself is a benchmark, minutes long, not a test."""
    gen = _script("teragen.py", "32m", tmp_path / "in", "--files", "2")
    assert gen.returncode == 0, gen.stderr
    proc = run_cli("run", os.path.join(ROOT, "jobs", "terasort.py"), tmp_path / "in", "-o", tmp_path / "out",
                   "--reducers", "4", "--workers", "2", "--sort-buffer-mb", "16", "--counters", timeout=900)
    assert proc.returncode == 0, proc.stderr
    spills = int(re.search(r"mrengine/map_spills = (\d+)", proc.stderr).group(1))
    assert spills >= 4, proc.stderr  # each map spills and merges, as the 1 GiB run's maps do
    check = _script("teravalidate.py", tmp_path / "in", tmp_path / "out")
    assert check.returncode == 0 and check.stdout.startswith("ok: 335544 records globally sorted"), check.stdout


def test_teravalidate_finds_a_record_out_of_order(tmp_path):
    """The validator can fail: swap two records of a sorted output."""
    import msgpack

    assert _script("teragen.py", "10k", tmp_path / "in", "--files", "1").returncode == 0
    data = (tmp_path / "in" / "part-00000.tera").read_bytes()
    records = sorted(data[i:i + 100] for i in range(0, len(data), 100))
    records[3], records[4] = records[4], records[3]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000").write_bytes(b"".join(msgpack.packb([r[:10], r[10:]]) for r in records))
    (tmp_path / "out" / "_SUCCESS").write_text("{}")
    check = _script("teravalidate.py", tmp_path / "in", tmp_path / "out")
    assert check.returncode == 1 and "not globally sorted" in check.stdout
