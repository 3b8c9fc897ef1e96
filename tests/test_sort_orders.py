"""The sort orders a step can ask for, end to end through `mrengine run`: map-only, secondary sort,
key fields, total order (and TeraSort with its generator and validator)."""

import os
import random
import subprocess
import sys

import pytest

from conftest import part_files, run_cli

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


def test_map_only_writes_one_part_per_map_in_the_mappers_order(text_input, tmp_path):
    proc = _run("map_only.py", text_input, tmp_path / "out")
    splits = _splits_lines(text_input)
    parts = part_files(tmp_path / "out")
    assert len(parts) == len(splits) > 2
    assert f"{len(splits)} map, {len(splits)} reduce" in proc.stdout + proc.stderr
    for part, lines in zip(parts, splits):
        expected = "".join(f"{w}\t{i}\n" for line in lines for i, w in enumerate(line.split()))
        assert open(part).read() == expected


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
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_terasort_sorts_generated_records_globally(tmp_path):
    """32 MiB here (docs/PERFORMANCE.md has the 1 GiB run): generated, sorted, validated."""
    gen = _script("teragen.py", "32m", tmp_path / "in", "--files", "4")
    assert gen.returncode == 0, gen.stderr
    proc = run_cli("run", os.path.join(ROOT, "jobs", "terasort.py"), tmp_path / "in", "-o", tmp_path / "out",
                   "--reducers", "3", "--workers", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr
    check = _script("teravalidate.py", tmp_path / "in", tmp_path / "out")
    assert check.returncode == 0 and check.stdout.startswith("ok: 335544 records"), check.stdout


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
