"""`mrengine.testing.run_job` against the real CLI: every job in jobs/ (and a chained, a main(ctx), a
jsonlines and a msgpack job) gives the same bytes both ways; counters, params, records of each
format, and errors as a user's own unit test meets them."""

import doctest
import importlib
import json
import os
import tempfile

import numpy as np
import pytest

import mrengine.testing
from mrengine.errors import TaskFailedError
from mrengine.outputs import render
from mrengine.testing import run_job

from conftest import JOBS, REPO, SAMPLE_TEXT, TEST_JOBS, read_bytes, run_cli

BREAST_CANCER = os.path.join(REPO, "sample_data", "breast_cancer")
NEW_TESTAMENT = os.path.join(SAMPLE_TEXT, "kjv-new-testament.txt")


def mrengine_run(job, inputs, out, *args):
    result = run_cli("run", job, *inputs, "-o", out, "--workers", "2", *args)
    assert result.returncode == 0, result.stderr
    return result


def manifest(out):
    with open(os.path.join(out, "_SUCCESS")) as f:
        return json.load(f)


def manifest_counters(out):
    return {(g, n): v for g, n, v in manifest(out)["counters"]}


def written_files(out):
    return {name: open(os.path.join(out, name), "rb").read() for name in sorted(os.listdir(out)) if name != "_SUCCESS"}


# ---------------------------------------------------------------- the same bytes as `mrengine run`


@pytest.mark.parametrize("job", [os.path.join(JOBS, "wordcount.py"), os.path.join(JOBS, "wordcount_fast.py"),
                                 os.path.join(TEST_JOBS, "two_steps.py")], ids=os.path.basename)
def test_a_text_job_writes_what_mrengine_run_writes(tmp_path, job):
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    mrengine_run(job, [NEW_TESTAMENT], cli_out, "--split-size", "256k", "--reducers", "3")
    result = run_job(job, [NEW_TESTAMENT], split_size=256 * 1024, reducers=3, output=api_out)

    assert len(result.parts) >= 2 and result.parts == read_bytes(cli_out)
    assert (api_out / "_SUCCESS").read_bytes() == (cli_out / "_SUCCESS").read_bytes()
    assert manifest(cli_out)["maps"] >= 2  # several splits, so maps, combiners and merges really meet
    assert result.lines == [line for data in read_bytes(cli_out).values() for line in data.decode().split("\n")[:-1]]
    assert [f"{render(k)}\t{render(v)}" for k, v in result.pairs] == result.lines  # the pairs, typed, are what was written
    if "two_steps" not in job:
        assert result.counters == manifest_counters(cli_out)


@pytest.mark.parametrize("mode", ["gradient", "average"])
def test_sgd_trains_the_model_mrengine_run_trains(tmp_path, mode):
    train, test = os.path.join(BREAST_CANCER, "train.csv"), os.path.join(BREAST_CANCER, "test.csv")
    params = {"epochs": 3, "lr": 1.0, "l2": 0.0022, "test": test, "mode": mode}
    cli_out = tmp_path / "cli"
    mrengine_run(os.path.join(JOBS, "sgd.py"), [train], cli_out, "--split-size", "16k",
                 *[arg for name, value in params.items() for arg in ("-p", f"{name}={value}")])
    result = run_job(os.path.join(JOBS, "sgd.py"), [train], params=params, split_size=16 * 1024)

    cli_files = written_files(cli_out)
    assert sorted(result.files) == sorted(cli_files) == ["log.csv", "model.json", "model.npy"]
    assert result.files["model.json"] == cli_files["model.json"]
    assert result.files["model.npy"] == cli_files["model.npy"]
    assert json.loads(result.files["model.json"])["epochs"] == 3

    def without_seconds(log):  # the last column is how long each epoch took
        return [line.rsplit(",", 1)[0] for line in log.decode().splitlines()]

    assert without_seconds(result.files["log.csv"]) == without_seconds(cli_files["log.csv"])
    assert result.counters["mrengine", "split_cache_hits"] > 0  # rounds 2+ reuse the parsed splits, as workers do


def write_regression(path, rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4))
    table = np.column_stack([x, x @ [1.5, -2.0, 0.5, 3.0] + 0.7 + 0.1 * rng.standard_normal(rows)])
    np.savetxt(path, table, delimiter=",", header="a,b,c,d,y", comments="", fmt="%.17g")
    return table


def test_linreg_fits_the_model_mrengine_run_fits(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_regression(train, 2000, seed=1)
    write_regression(test, 300, seed=2)
    cli_out = tmp_path / "cli"
    mrengine_run(os.path.join(JOBS, "linreg.py"), [train], cli_out, "--split-size", "16k", "-p", "l2=0.1",
                 "-p", f"test={test}")
    result = run_job(os.path.join(JOBS, "linreg.py"), [train], params={"l2": 0.1, "test": str(test)},
                     split_size=16 * 1024)

    assert result.files == written_files(cli_out)
    model = json.loads(result.files["model.json"])
    assert np.allclose(model["weights"], [1.5, -2.0, 0.5, 3.0], atol=0.05) and model["test"]["rows"] == 300


def test_numeric_records_are_read_as_an_npy_file_would_be(tmp_path):
    table = np.random.default_rng(3).standard_normal((1000, 3))
    np.save(tmp_path / "data.npy", table)
    cli_out = tmp_path / "cli"
    mrengine_run(os.path.join(JOBS, "linreg.py"), [tmp_path / "data.npy"], cli_out, "--split-size", "8k")
    result = run_job(os.path.join(JOBS, "linreg.py"), records=table, split_size=8 * 1024)
    assert result.files == written_files(cli_out)


def test_a_main_job_counts_on_the_driver_and_in_its_tasks(tmp_path):
    job = os.path.join(TEST_JOBS, "line_lengths.py")
    cli_out = tmp_path / "cli"
    cli = mrengine_run(job, [NEW_TESTAMENT], cli_out, "--split-size", "256k")
    result = run_job(job, [NEW_TESTAMENT], split_size=256 * 1024)

    assert result.files == written_files(cli_out)
    lines = open(NEW_TESTAMENT, encoding="utf-8").read().splitlines()
    assert result.counters["lines", "read"] == len(lines)
    assert result.counters["driver", "rounds"] == 1
    assert result.counters["driver", "distinct lengths"] == len({len(line.split()) for line in lines})
    for (group, name), n in result.counters.items():
        if group != "mrengine":
            assert f"{group}/{name} = {n}" in cli.stderr


def test_jsonlines_and_msgpack_jobs_read_records_as_mrengine_run_reads_files(tmp_path):
    events = [{"user": f"u{i % 7}", "kind": ["view", "click"][i % 3 == 0], "n": i % 5} for i in range(500)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    totals_job, rollup_job = os.path.join(TEST_JOBS, "json_totals.py"), os.path.join(TEST_JOBS, "msgpack_rollup.py")

    totals_out = tmp_path / "totals"
    mrengine_run(totals_job, [events_file], totals_out, "--split-size", "4k")
    totals = run_job(totals_job, records=events, split_size=4096)
    assert totals.parts == read_bytes(totals_out)  # msgpack: the typed pairs' own bytes
    expected = {}
    for e in events:
        expected[e["user"], e["kind"]] = expected.get((e["user"], e["kind"]), 0) + e["n"]
    assert dict(totals.pairs) == expected  # tuple keys stay tuples
    with pytest.raises(ValueError, match="msgpack"):
        totals.lines

    rollup_out = tmp_path / "rollup"
    mrengine_run(rollup_job, [totals_out], rollup_out)
    rollup = run_job(rollup_job, records=totals.pairs)
    assert rollup.parts == read_bytes(rollup_out)
    per_user = {}
    for e in events:
        per_user[e["user"]] = per_user.get(e["user"], 0) + e["n"]
    assert sorted(rollup.pairs) == sorted(per_user.items())


def test_tsv_records_are_rows_of_numbers():
    rows = [[1, 2.5, -3], [4, 0.125, 6e100], [7, 8, 9]]
    result = run_job(os.path.join(TEST_JOBS, "column_sums.py"), records=rows, reducers=1)
    assert result.pairs == [(0, 12.0), (1, 10.625), (2, 6e100 + 6)]


# ---------------------------------------------------------------- counters and params


def test_counters_and_params_reach_the_job_as_they_do_through_the_cli(tmp_path):
    lines = ["a quick brown fox", "jumps over a lazy dog", "", "a fox"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    job = os.path.join(TEST_JOBS, "min_length.py")
    cli_out = tmp_path / "cli"
    mrengine_run(job, [tmp_path / "in.txt"], cli_out, "-p", "min_length=4", "-p", "tag=w:")
    result = run_job(job, [tmp_path / "in.txt"], params={"min_length": 4, "tag": "w:"})

    assert result.parts == read_bytes(cli_out)
    assert sorted(result.pairs) == [("w:brown", 1), ("w:jumps", 1), ("w:lazy", 1), ("w:over", 1), ("w:quick", 1)]
    assert result.counters["words", "too short"] == 6  # a, fox, a, dog, a, fox
    assert result.counters == manifest_counters(cli_out)


def test_counters_count_in_mapper_combiner_and_reducer():
    lines = ["one two two", "", "incomprehensibilities two", "one"]
    result = run_job(os.path.join(TEST_JOBS, "counters.py"), records=lines)
    c = result.counters
    assert (c["lines", "all"], c["lines", "blank"], c["words", "long"]) == (4, 1, 1)
    assert (c["words", "distinct"], c["words", "total"]) == (3, sum(len(line.split()) for line in lines))
    assert c["combiner", "calls"] == 2  # one split: "one" and "two" each have more than one value
    assert c["mrengine", "map_input_records"] == 4


# ---------------------------------------------------------------- as a user writes a unit test


def test_a_users_unit_test_of_their_word_count(monkeypatch):
    monkeypatch.syspath_prepend(JOBS)  # as a project's tests import its job modules
    wordcount = importlib.import_module("wordcount")

    result = run_job(wordcount, records=["the cat sat", "on the mat", "The end"])

    assert dict(result.pairs) == {"the": 2, "cat": 1, "sat": 1, "on": 1, "mat": 1, "The": 1, "end": 1}
    assert sorted(result.lines) == ["The\t1", "cat\t1", "end\t1", "mat\t1", "on\t1", "sat\t1", "the\t2"]
    assert result.counters["mrengine", "map_input_records"] == 3


def test_the_module_docstring_example_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    outcome = doctest.testmod(mrengine.testing)
    assert outcome.attempted >= 3 and outcome.failed == 0


def test_the_readme_example_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = readme.split("## Testing your job", 1)[1]
    example = section.split("```python", 1)[1].split("```", 1)[0]
    names = {}
    exec(compile(example, "README.md", "exec"), names)
    names["test_counts_words"]()


def test_a_failing_mapper_fails_the_run_with_the_users_traceback():
    with pytest.raises(TaskFailedError) as info:
        run_job(os.path.join(TEST_JOBS, "failing_mapper.py"), records=["in the beginning", "to Bethlehem of Judaea"])
    message = str(info.value)
    assert "map task 0" in message and "at the line at byte offset 17" in message
    assert "mapper raised ValueError: refusing 'Bethlehem'" in message
    assert "in mapper" in message and "ValueError: refusing 'Bethlehem'" in info.value.traceback


def test_nothing_is_left_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where run_job keeps its input, map outputs and output
    run_job(os.path.join(JOBS, "wordcount.py"), records=["a b", "b"])
    with pytest.raises(TaskFailedError):
        run_job(os.path.join(TEST_JOBS, "failing_mapper.py"), records=["Bethlehem"])
    assert list(tmp_path.iterdir()) == []


def test_mistakes_in_the_call_are_refused_in_pythons_own_voice():
    job = os.path.join(JOBS, "wordcount.py")
    with pytest.raises(TypeError, match="not both"):
        run_job(job, [NEW_TESTAMENT], records=["a"])
    with pytest.raises(TypeError, match="not neither"):
        run_job(job)
    with pytest.raises(TypeError, match="pass records="):
        run_job(job, [["a line"]])
    with pytest.raises(ValueError, match="without a newline"):
        run_job(job, records=["two\nlines"])
    with pytest.raises(TypeError, match="-p NAME=VALUE"):
        run_job(job, records=["a"], params={"when": object()})
    with pytest.raises(ValueError, match="reducers must be a positive int"):
        run_job(job, records=["a"], reducers=0)
