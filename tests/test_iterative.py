"""Iterative jobs (`main(ctx)`) through the real CLI: rounds on the cluster, the split cache and the
broadcast counted per round, a worker killed between rounds, results written to a path, failures
reported with the user's own file and line, and a run against a standalone master."""

import json
import subprocess
import sys

import numpy as np
import psutil
import pytest

from mrengine.tasks import JobTasks, WorkerReady

from conftest import PACKAGE, run_cli
from sgd_support import FIXTURE_JOBS, JOBS, kill_worker, logs, mrengine_run, start_run, stop, wait_for

COUNTS = FIXTURE_JOBS / "iterative_counts.py"


def write_table(path, rows=3000, cols=3, seed=0):
    a = np.random.default_rng(seed).standard_normal((rows, cols))
    if path.suffix == ".npy":
        np.save(path, a)
    else:
        np.savetxt(path, a, delimiter=",", header=",".join(f"c{i}" for i in range(cols)), comments="", fmt="%.17g")
    return a


def splits_of(path, split_size):
    return -(-path.stat().st_size // split_size)


def new_pairs_per_round(rounds):
    """How many (split, process) pairs each round's map winners add: each must read its split once."""
    seen, counts = set(), []
    for rnd in rounds:
        pairs = {tuple(p) for p in rnd["ran"]}
        counts.append(len(pairs - seen))
        seen |= pairs
    return counts


@pytest.mark.parametrize("suffix,split_size", [(".csv", 32 * 1024), (".npy", 16 * 1024)])
def test_each_split_is_read_once_and_the_broadcast_loaded_once_per_process_per_round(tmp_path, suffix, split_size):
    data = tmp_path / f"table{suffix}"
    table = write_table(data)
    splits = splits_of(data, split_size)
    assert splits >= 5
    # After round 1 the driver overwrites the file: later rounds can only repeat round 1 from memory.
    proc = mrengine_run(COUNTS, [data], tmp_path / "out", "--split-size", split_size, "-p", "scramble=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())
    assert len(rounds) == 5
    for rnd in rounds:
        assert rnd["n"] == len(table)
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)  # the right broadcast, every round
        assert len(rnd["ran"]) == splits
        # Every task process decodes the round's broadcast once, however many tasks it runs.
        assert rnd["broadcast_loads"] == len(rnd["processes"]) <= 2 < splits
    assert [r["split_reads"] for r in rounds] == [splits, 0, 0, 0, 0]
    assert [r["split_cache_hits"] for r in rounds] == [0] + [splits] * 4
    assert "splits read %d times, from memory %d times" % (splits, 4 * splits) in proc.stderr


def test_a_worker_killed_between_rounds_takes_its_cache_with_it(tmp_path):
    data = tmp_path / "table.csv"
    table = write_table(data)
    gate = tmp_path / "gate"
    gate.mkdir()
    proc = start_run(COUNTS, [data], tmp_path / "out", "--split-size", "32k", "-p", f"gate={gate}", "-p", "pause_after=2",
                     log_dir=tmp_path)
    try:
        wait_for(lambda: (gate / "between").exists(), 90, "round 2 to end", proc)
        winners = json.loads((gate / "between").read_text())[-1]
        victim_pid = winners[0][1]  # a task process that holds splits in its cache
        worker = psutil.Process(victim_pid).parent()
        assert "mrengine worker" in " ".join(worker.cmdline())
        kill_worker(worker)
        (gate / "go").touch()
        proc.wait(120)
    finally:
        stop(proc)
    assert proc.returncode == 0, logs(tmp_path)
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())
    for rnd in rounds:
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)
    assert all(pid != victim_pid for r in rounds[2:] for _, pid in r["ran"])
    # A process reads a split the first time it wins it, then serves it from memory: the survivor
    # reads afresh the splits that died with the victim.
    assert [r["split_reads"] for r in rounds] == new_pairs_per_round(rounds)
    assert sum(r["split_reads"] for r in rounds) > splits_of(data, 32 * 1024)


def test_a_round_can_write_to_a_path_and_main_sees_params_and_counters(tmp_path):
    job = tmp_path / "words.py"
    job.write_text(
        "from mrengine import ctx\n"
        "def mapper(path, line):\n"
        "    for word in line.split():\n"
        "        yield word, 1\n"
        "def add(key, values):\n"
        "    yield key, sum(values)\n"
        "def main(ctx):\n"
        "    out = ctx.output + '/counts'\n"
        "    result = ctx.map_reduce(ctx.inputs, mapper=mapper, reducer=add, combiner=add, output=out, num_reducers=3)\n"
        "    try:\n"
        "        list(result)\n"
        "    except TypeError as exc:\n"
        "        message = str(exc)\n"
        "    totals = dict(ctx.map_reduce(out, mapper=lambda k, line: [('words', int(line.split('\\t')[1]))], reducer=add))\n"
        "    ctx.counter('driver', 'words', totals['words'])\n"
        "    with ctx.open('notes/summary.txt', 'w') as f:\n"
        "        f.write(f\"{message}\\n{totals['words']} {ctx.params['tag']}\\n\")\n")
    text = tmp_path / "in.txt"
    text.write_text("a b c\nb c\nc\n" * 100)
    out = tmp_path / "out"
    proc = mrengine_run(job, [text], out, "-p", "tag=ok")
    assert proc.returncode == 0, proc.stderr
    counts = dict(line.split("\t") for p in sorted((out / "counts").glob("part-*")) for line in p.read_text().splitlines())
    assert counts == {"a": "100", "b": "200", "c": "300"}
    assert (out / "counts" / "_SUCCESS").exists() and len(list((out / "counts").glob("part-*"))) == 3
    message, words = (out / "notes" / "summary.txt").read_text().splitlines()
    assert message == f"this round wrote its results to {out}/counts; read them from there"
    assert words == "600 ok"
    assert "driver/words = 600" in proc.stderr and "rounds: 2" in proc.stderr
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["rounds"] == 2 and list(manifest["files"]) == ["notes/summary.txt"]
    assert not (out / "_temporary").exists()
    size = (out / "notes" / "summary.txt").stat().st_size
    verified = run_cli("verify", out)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"{out}: 1 files, {size} bytes match the manifest of job words"
    (out / "notes" / "summary.txt").write_text("cut")
    changed = run_cli("verify", out)
    assert changed.returncode == 1 and f"notes/summary.txt differs: bytes 3 (manifest: {size})" in changed.stderr


FAILING = """\
import numpy as np
input_format = "numeric"

def rows(blocks):
    for a in blocks:
        if a[0, 0] > 1e9:
            raise ValueError("a huge first value")
        yield "n", len(a)

def add(key, values):
    yield key, sum(values)

def main(ctx):
    with ctx.open("partial.txt", "w") as f:
        f.write("written before the failure")
    what = ctx.params["what"]
    if what == "main":
        ctx.map_reduce(ctx.inputs, map_split=rows, reducer=add)
        raise RuntimeError("the driver gave up")
    if what == "call":
        ctx.map_reduce(ctx.inputs, mapper=add, map_split=rows)
    if what == "open":
        ctx.open("../elsewhere.txt", "w")
    if what == "missing":
        ctx.map_reduce(ctx.inputs + ["no-such-file.csv"], map_split=rows, reducer=add)
    ctx.map_reduce(ctx.inputs, map_split=rows, reducer=add)
    ctx.map_reduce([ctx.params["bad"]], map_split=rows, reducer=add)
"""


def failing_job(tmp_path):
    """FAILING, written out with its inputs: (job, a good csv, a csv that makes `rows` raise)."""
    job = tmp_path / "failing.py"
    job.write_text(FAILING)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("1,2\n3,4\n")
    bad.write_text("1e10,2\n3,4\n")
    return job, good, bad


@pytest.mark.parametrize("what,code,expected", [
    ("main", 5, ["mrengine: error: main raised RuntimeError: the driver gave up", 'line 19, in main']),
    ("call", 2, ["ctx.map_reduce(): can't define both mapper and map_split", "failing.py line 21"]),
    ("open", 5, ["main raised ValueError: ctx.open needs a relative file name inside the output directory"]),
    ("missing", 3, ["mrengine: error: input path '/", "/no-such-file.csv' does not exist\n  at ",  # made absolute
                    "failing.py line 25"]),
    ("task", 5, ["job failing round 2 failed: map task 0", "failed on all 1 attempts", "ValueError: a huge first value", "(ctx.map_reduce at",
                 "failing.py line 27)", 'failing.py", line 7, in rows']),
])
def test_failures_name_the_users_line_and_leave_no_result(tmp_path, what, code, expected):
    job, good, bad = failing_job(tmp_path)
    out = tmp_path / "out"
    proc = mrengine_run(job, [good], out, "-p", f"what={what}", "-p", f"bad={bad}", "--max-attempts", "1", workers=1)
    assert proc.returncode == code, proc.stderr
    for text in expected:
        assert text in proc.stderr
    assert PACKAGE not in proc.stderr  # no frames of ours
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_main_runs_against_a_standalone_master(tmp_path):
    """`mrengine run --master`: the same rounds on a cluster the test started itself."""
    ready = tmp_path / "master.address"
    secret = tmp_path / "secret"
    secret.write_text("s3cret-for-this-test")
    base = [sys.executable, "-m", "mrengine"]
    procs = [subprocess.Popen(base + ["master", "--bind", "127.0.0.1:0", "--secret-file", str(secret), "--ready-file", str(ready)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        address = wait_for(lambda: ready.exists() and ready.read_text().strip(), 30, "the master to listen")
        procs.append(subprocess.Popen(base + ["worker", "--master", address, "--secret-file", str(secret),
                                              "--work-dir", str(tmp_path / "work")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        rng = np.random.default_rng(4)
        x = rng.standard_normal((400, 2))
        np.save(tmp_path / "lin.npy", np.column_stack([x, x @ [2.0, -1.0] + 0.5]))
        proc = mrengine_run(JOBS / "linreg.py", [tmp_path / "lin.npy"], tmp_path / "out", "--master", address,
                            "--secret-file", secret)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
    assert proc.returncode == 0, proc.stderr
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    assert np.allclose(model["weights"], [2.0, -1.0]) and np.isclose(model["bias"], 0.5)


def test_maps_wait_a_while_for_the_worker_that_holds_their_split():
    tasks = JobTasks(3, 1, preferred=["w1", "w2", None], locality_wait=3.0)
    live = frozenset({"w1", "w2"})
    assert tasks.handle(WorkerReady("w2", 0.0, live))[0].attempt.index == 1  # its own split first
    assert tasks.handle(WorkerReady("w2", 0.1, live))[0].attempt.index == 2  # then one nobody holds
    assert tasks.handle(WorkerReady("w2", 0.2, live)) == []  # not w1's split, while w1 may still come
    assert tasks.handle(WorkerReady("w2", 3.0, live))[0].attempt.index == 0  # after the wait, anyone
    gone = JobTasks(1, 1, preferred=["w1"], locality_wait=3.0)
    assert gone.handle(WorkerReady("w2", 0.0, frozenset({"w2"})))[0].attempt.index == 0  # w1 is dead
