"""`--skip-bad-records N`: records the job's code keeps failing on are skipped once two attempts have
failed on each, listed with their split, offset and traceback in OUT/_skipped/, and counted in the
summary, the manifest and `mrengine verify`; more than N fail the job; off, a bad record fails it."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import PACKAGE, TEST_JOBS, run_cli
from mrengine.tasks import AttemptFailed, AttemptSucceeded, JobFailed, JobTasks, WorkerReady

JOB = os.path.join(TEST_JOBS, "skip_bad_records.py")
RECORDS = 10_000
BAD = (17, 23, 9001)  # two in the first split, one in the last
SPLIT_SIZE = "32k"  # 4 splits of the 10,000 lines
TASK_FAILED = 5  # errors.TaskFailedError.exit_code


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """The input file and each line's byte offset."""
    path = tmp_path_factory.mktemp("input") / "in.txt"
    lines = [f"record {n}\n" for n in range(RECORDS)]
    path.write_text("".join(lines))
    offsets, at = [], 0
    for line in lines:
        offsets.append(at)
        at += len(line)
    return path, offsets


def _output_lines(out) -> list[str]:
    return sorted(line for name in os.listdir(out) if name.startswith("part-")
                  for line in (out / name).read_text().splitlines())


def _skipped(out) -> list[dict]:
    with open(out / "_skipped" / "step-0.jsonl") as f:
        return [json.loads(line) for line in f]


def _error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("mrengine: error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr.split("mrengine: error: ")[0], result.stderr
    return lines[0]


# ---------------------------------------------------------------- the task state machine


def _fail_on(tasks: JobTasks, worker: str, number: int) -> list:
    [launch] = tasks.handle(WorkerReady(worker, 0.0, frozenset({worker})))
    error = {"message": f"mapper raised on record {number}", "record": {"number": number}}
    return launch.attempt, tasks.handle(AttemptFailed(launch.attempt.id, error))


def test_each_record_is_skipped_after_two_failures_without_using_up_max_attempts():
    tasks = JobTasks(1, 1, max_attempts=1, skip_bad_records=3)
    skips = []
    for number in (4, 4, 9, 9, 12, 12):
        attempt, actions = _fail_on(tasks, "w1", number)
        assert actions == []  # retried: a record failure is not one of the task's max_attempts
        skips.append(attempt.skip)
    [launch] = tasks.handle(WorkerReady("w1", 1.0, frozenset({"w1"})))
    assert skips == [(), (), (4,), (4,), (4, 9), (4, 9)] and launch.attempt.skip == (4, 9, 12)
    assert tasks.handle(AttemptSucceeded(launch.attempt.id, {})) == []  # the map is done; its reduce comes next
    assert tasks.maps[0].skipped == (4, 9, 12)


def test_one_record_more_than_allowed_fails_the_job():
    tasks = JobTasks(1, 1, max_attempts=4, skip_bad_records=1)
    for number in (4, 4, 9):
        assert _fail_on(tasks, "w1", number)[1] == []
    _, actions = _fail_on(tasks, "w1", 9)
    assert [type(a) for a in actions] == [JobFailed] and actions[0].error["skip_budget"] == 1 and tasks.done


def test_without_the_option_a_record_failure_counts_as_before():
    tasks = JobTasks(1, 1, max_attempts=2)
    assert _fail_on(tasks, "w1", 4)[1] == []
    assert [type(a) for a in _fail_on(tasks, "w1", 4)[1]] == [JobFailed]


# ---------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_three_bad_records_of_10000_are_skipped_and_listed(records, tmp_path):
    src, offsets = records
    out = tmp_path / "out"
    # --max-attempts 2, yet the first split needs 4 failed attempts: failures on records do not count.
    result = run_cli("run", JOB, src, "-o", out, "--workers", "2", "--split-size", SPLIT_SIZE, "--max-attempts", "2",
                     "-p", "bad=" + ",".join(map(str, BAD)), "--skip-bad-records", "5")
    assert result.returncode == 0, result.stderr
    listed = out / "_skipped" / "step-0.jsonl"
    assert f"  skipped 3 bad records (see {listed})" in result.stderr.splitlines()

    skipped = sorted(_skipped(out), key=lambda e: e["offset"])
    assert [(e["text"], e["offset"], e["file"], e["task"]) for e in skipped] == [
        ("record 17", offsets[17], str(src), "map task 0"), ("record 23", offsets[23], str(src), "map task 0"),
        ("record 9001", offsets[9001], str(src), "map task 3")]
    for entry, number in zip(skipped, BAD):
        assert entry["where"] == f"the line at byte offset {offsets[number]}"
        assert entry["split"].startswith(f"{src} bytes ")
        assert entry["error"] == f"mapper raised ValueError: cannot parse 'record {number}', at {entry['where']}"
        assert entry["traceback"].endswith(f"ValueError: cannot parse 'record {number}'")
        assert "skip_bad_records.py" in entry["traceback"] and PACKAGE not in entry["traceback"]

    assert _output_lines(out) == sorted(f"{n}\trecord {n}" for n in range(RECORDS) if n not in BAD)
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["skipped"] == {"records": 3, "file": "_skipped/step-0.jsonl"}
    assert ["mrengine", "map_skipped_records", 3] in manifest["counters"]

    verify = run_cli("verify", out)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.splitlines()[-1] == f"  skipped 3 bad records (see {listed})"

    listed.write_text(listed.read_text().splitlines(keepends=True)[0])  # a list that lost two records
    verify = run_cli("verify", out)
    assert verify.returncode == 1 and "_skipped/step-0.jsonl lists 1 skipped bad records (manifest: 3)" in verify.stderr


@pytest.mark.slow
def test_off_by_default_a_bad_record_fails_the_job_as_before(records, tmp_path):
    src, offsets = records
    out = tmp_path / "out"
    result = run_cli("run", JOB, src, "-o", out, "--workers", "2", "--split-size", SPLIT_SIZE, "--max-attempts", "2",
                     "-p", "bad=9001")
    assert result.returncode == TASK_FAILED, result.stderr
    assert (f"map task 3 (split {src} bytes 98304-{offsets[-1] + len(f'record {RECORDS - 1}') + 1}) failed on all 2 "
            f"attempts") in _error_line(result)
    assert f"mapper raised ValueError: cannot parse 'record 9001', at the line at byte offset {offsets[9001]}" \
        in _error_line(result)
    assert not out.exists() or not os.listdir(out)


@pytest.mark.slow
def test_the_option_is_refused_where_it_cannot_work(records, tmp_path):
    src, _ = records
    spark = run_cli("run", JOB, src, "-o", tmp_path / "a", "--runner", "spark", "--skip-bad-records", "1")
    assert spark.returncode == 2 and "--skip-bad-records needs mrengine's own master" in spark.stderr
    main_job = run_cli("run", os.path.join(TEST_JOBS, "iterative_counts.py"), src, "-o", tmp_path / "b",
                       "--skip-bad-records", "1")
    assert main_job.returncode == 2, main_job.stderr
    assert "--skip-bad-records applies to jobs of steps" in _error_line(main_job)


# ---------------------------------------------------------------- on a running master


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """A master and one worker of 2 slots, as separate processes; stopped at the end of the module."""
    base = tmp_path_factory.mktemp("cluster")
    secret, ready = base / "key", base / "ready"
    secret.write_bytes(os.urandom(32))
    procs = []

    def start(*args):
        with open(base / f"{args[0]}.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "mrengine", *map(str, args)], stdout=log,
                                          stderr=log, stdin=subprocess.DEVNULL))

    try:
        start("master", "--bind", "127.0.0.1:0", "--secret-file", secret, "--ready-file", ready)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, "the master did not start"
            time.sleep(0.05)
        start("worker", "--master", ready.read_text(), "--secret-file", secret, "--slots", "2",
              "--work-dir", base / "work")
        yield ("--master", ready.read_text(), "--secret-file", secret)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_more_bad_records_than_allowed_fail_the_job_on_a_master(master, records, tmp_path):
    src, _ = records
    out = tmp_path / "out"
    result = run_cli("run", JOB, src, "-o", out, "--split-size", SPLIT_SIZE, *master,
                     "-p", "bad=" + ",".join(map(str, BAD)), "--skip-bad-records", "2")
    assert result.returncode == TASK_FAILED, result.stderr
    line = _error_line(result)
    assert "mapper raised ValueError: cannot parse 'record " in line
    assert line.endswith("; this record failed twice too, and skipping it would make 3 bad records skipped, more "
                         "than --skip-bad-records 2 allows"), line
    assert not out.exists() or not os.listdir(out)  # no _SUCCESS, no parts, no list of skipped records


@pytest.mark.slow
def test_a_reduce_key_group_is_skipped_on_a_master(master, records, tmp_path):
    src, _ = records
    out = tmp_path / "out"
    result = run_cli("run", JOB, src, "-o", out, "--split-size", SPLIT_SIZE, "--reducers", "2", *master,
                     "-p", "bad_keys=5,6", "--skip-bad-records", "2")
    assert result.returncode == 0, result.stderr
    skipped = sorted(_skipped(out), key=lambda e: e["text"])
    assert [(e["text"], e["where"]) for e in skipped] == [("5", "key 5"), ("6", "key 6")]
    assert all(e["task"].startswith("reduce task ") and e["traceback"].endswith("KeyError: " + e["text"])
               for e in skipped)
    assert _output_lines(out) == sorted(f"{n}\trecord {n}" for n in range(RECORDS) if n not in (5, 6))
    assert run_cli("verify", out).returncode == 0
