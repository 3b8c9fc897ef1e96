"""What `mrengine run --runner spark` says when it cannot run: one paragraph, an exit code, no Java stack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from conftest import JOBS, SAMPLE_TEXT as TEXT, TEST_JOBS, run_cli
from spark_helpers import RUN_TIMEOUT

pytestmark = pytest.mark.spark

WORDCOUNT = os.path.join(JOBS, "wordcount.py")
CLUSTER_ERROR = 7  # errors.ClusterError.exit_code
TASK_FAILED = 5  # errors.TaskFailedError.exit_code


def assert_one_paragraph(stderr: str) -> str:
    assert "Traceback" not in stderr and "py4j" not in stderr and "\tat " not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrengine: error: "), stderr
    return lines[0]


def run_wordcount(tmp_path, *args: str, env: dict | None = None, timeout: float = RUN_TIMEOUT):
    return run_cli("run", WORDCOUNT, TEXT, "-o", tmp_path / "out", "--runner", "spark", *args, env=env, timeout=timeout)


def test_without_pyspark_it_names_the_extra_to_install(tmp_path):
    # The interpreter is told that pyspark and py4j are not there, as on a machine without them.
    code = "import sys; sys.modules['pyspark'] = sys.modules['py4j'] = None; from mrengine.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "run", WORDCOUNT, TEXT, "-o", str(tmp_path / "out"), "--runner", "spark"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    assert result.returncode == CLUSTER_ERROR
    line = assert_one_paragraph(result.stderr)
    assert "needs pyspark" in line and "pip install 'mrengine[spark]'" in line
    assert not (tmp_path / "out").exists()


def test_without_java_on_path(tmp_path):
    result = run_wordcount(tmp_path, env={"JAVA_HOME": "", "PATH": os.path.dirname(sys.executable)})  # python, no java
    assert result.returncode == CLUSTER_ERROR
    line = assert_one_paragraph(result.stderr)
    assert "needs Java 17 or newer" in line and "no java on PATH" in line


def test_java_home_pointing_nowhere(tmp_path):
    result = run_wordcount(tmp_path, env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert result.returncode == CLUSTER_ERROR
    line = assert_one_paragraph(result.stderr)
    assert f"JAVA_HOME is '{tmp_path / 'no-jdk'}', which holds no bin/java" in line


def test_unreachable_master_fails_fast(tmp_path):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_wordcount(tmp_path, "--spark-master", f"spark://127.0.0.1:{port}", timeout=60)
    assert result.returncode == CLUSTER_ERROR
    line = assert_one_paragraph(result.stderr)
    assert f"cannot reach the Spark master spark://127.0.0.1:{port}" in line and "refused" in line


def test_a_spark_submit_jvm_that_is_gone_is_named(tmp_path):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_wordcount(tmp_path, env={"PYSPARK_GATEWAY_PORT": str(port), "PYSPARK_GATEWAY_SECRET": "s"}, timeout=60)
    assert result.returncode == CLUSTER_ERROR
    line = assert_one_paragraph(result.stderr)
    assert f"cannot reach the Spark JVM that spark-submit started (PYSPARK_GATEWAY_PORT={port})" in line
    assert "refused" in line
    assert not (tmp_path / "out").exists()


def test_spark_options_need_the_spark_runner(tmp_path):
    result = run_cli("run", WORDCOUNT, TEXT, "-o", tmp_path / "out", "--spark-master", "local[2]")
    assert result.returncode == 2
    assert "--spark-master and --spark-conf go with --runner spark" in result.stderr


def test_user_error_shows_the_users_traceback_and_leaves_no_output(tmp_path):
    result = run_cli("run", os.path.join(TEST_JOBS, "crashes.py"), TEXT, "-o", tmp_path / "out", "--runner", "spark",
                     "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false", timeout=RUN_TIMEOUT)
    assert result.returncode == TASK_FAILED
    errors = result.stderr[result.stderr.index("mrengine: error: "):]
    assert errors.startswith(
        "mrengine: error: job crashes failed: map task 0 (split "
        f"{os.path.join(TEXT, 'kjv-law-and-history.txt')} bytes 0-1997513) failed on all 4 attempts; "
        "the last error: mapper raised ZeroDivisionError: division by zero, at the line at byte offset 16348\n"
        "Traceback (most recent call last):\n"
        f'  File "{os.path.join(TEST_JOBS, "crashes.py")}", line 6, in mapper\n')
    assert "\tat " not in errors and "py4j" not in errors and "mrengine-task-error" not in errors
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
