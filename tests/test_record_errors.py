"""Records that cannot be read or written fail their task on its first attempt, without retries: the
run exits 4 (RecordError) with the message that names the file and offset, or the value's type, and
the Spark runner says the same (on one Spark session for the module: the CLI prints every runner's
error alike, and test_spark_errors.py and test_spark_iterative.py take Spark's errors through it)."""

import os

import pytest

from conftest import TEST_JOBS, run_cli
from mrengine.errors import MrEngineError
from mrengine.tasks import AttemptFailed, JobFailed, JobTasks, Launch, TaskState, WorkerReady
from spark_helpers import RUN_TIMEOUT, run_spark

JOB = os.path.join(TEST_JOBS, "bad_records.py")
RECORD_ERROR = 4  # errors.RecordError.exit_code
NOT_RETRIED = ("failed on its first attempt and was not retried, since a record that cannot be read or "
               "written fails every attempt alike: ")
RUNNER_PARAMS = ["native", pytest.param("spark", marks=pytest.mark.spark)]  # Spark's carry its marker


def test_a_final_failure_fails_the_job_at_once():
    tasks = JobTasks(2, 1, max_attempts=4)
    live = frozenset({"w1", "w2"})
    [launch] = tasks.handle(WorkerReady("w1", 0.0, live))
    assert isinstance(launch, Launch)
    actions = tasks.handle(AttemptFailed(launch.attempt.id, {"message": "bad bytes", "final": True}, final=True))
    assert [type(a) for a in actions] == [JobFailed] and actions[0].error["message"] == "bad bytes"
    assert tasks.maps[0].state is TaskState.FAILED and tasks.maps[0].failures == 1 and tasks.done
    assert tasks.handle(WorkerReady("w2", 1.0, live)) == []  # nothing is launched again


def test_an_ordinary_failure_is_still_retried():
    tasks = JobTasks(1, 1, max_attempts=4)
    [launch] = tasks.handle(WorkerReady("w1", 0.0, frozenset({"w1"})))
    assert tasks.handle(AttemptFailed(launch.attempt.id, {"message": "flaky"})) == []
    assert tasks.maps[0].state is TaskState.PENDING and not tasks.done


def _error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("mrengine: error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _spark_error_line(request, tmp_path, src, params: dict) -> str:
    """The line `mrengine run --runner spark` prints for the error the module's Spark session raises."""
    with pytest.raises(MrEngineError) as failed:
        run_spark(request.getfixturevalue("spark_runner"), JOB, tmp_path / "out", src, params=params)
    assert failed.value.exit_code == RECORD_ERROR, failed.value
    assert not getattr(failed.value, "traceback", None)  # the CLI prints a TaskFailedError's traceback below its line
    return f"mrengine: error: {failed.value.message}"


def _run(request, tmp_path, runner, text: bytes, **params):
    src = tmp_path / "in.txt"
    src.write_bytes(text)
    attempts = tmp_path / "attempts.txt"
    params = {"attempts": str(attempts), **params}
    if runner == "spark":
        line = _spark_error_line(request, tmp_path, src, params)
    else:
        result = run_cli("run", JOB, src, "-o", tmp_path / "out", "--workers", "2",
                         *(arg for name, value in params.items() for arg in ("-p", f"{name}={value}")), timeout=RUN_TIMEOUT)
        assert result.returncode == RECORD_ERROR, result.stderr
        line = _error_line(result)
    assert attempts.read_text() == "attempt\n"  # one attempt ran, and no retry
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith("part-")] if (tmp_path / "out").exists() else True
    return src, line


@pytest.mark.parametrize("runner", RUNNER_PARAMS)
def test_a_value_that_cannot_be_encoded_fails_at_once(request, tmp_path, runner):
    src, line = _run(request, tmp_path, runner, b"one two\nthree four\n", bad="set")
    assert line == (f"mrengine: error: job bad_records failed: map task 0 (split {src} bytes 0-19) " + NOT_RETRIED +
                    "cannot encode a value of type builtins.set: records may hold None, bool, int, float, str, "
                    "bytes, list, tuple, dict and numpy arrays or scalars")


@pytest.mark.parametrize("runner", RUNNER_PARAMS)
def test_input_that_is_not_utf8_fails_at_once(request, tmp_path, runner):
    src, line = _run(request, tmp_path, runner, b"fine words\nbad \xff\xfe bytes\n")
    assert line.startswith(f"mrengine: error: job bad_records failed: map task 0 (split {src} bytes 0-24) "
                           + NOT_RETRIED + f"{src}: bytes at offset 15 are not valid UTF-8")
