"""Comparing the Spark runner's output directories with the native runner's."""

from __future__ import annotations

import contextlib
import os

from mrengine.job import load_job
from mrengine.steps import RunOptions
from mrengine.storage import absolute_url
from conftest import SAMPLE_TEXT, run_cli

RUN_TIMEOUT = 300.0  # one CLI run, Spark's start-up included, on 2 busy cores


def run_native(job: str, out, *args: str, inputs: str = SAMPLE_TEXT):
    result = run_cli("run", job, inputs, "-o", out, "--workers", "2", *args, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result


def run_spark(runner, job: str, out, inputs, **options):
    """`mrengine run JOB INPUTS -o OUT --runner spark ...` on the running Spark session `runner` (the
    `spark_runner` fixture), as the CLI runs it: `options` are RunOptions' (split_size=, params=, ...)."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    return runner.run(load_job(str(job)), [absolute_url(str(p)) for p in inputs], absolute_url(str(out)),
                      RunOptions(**options))


def files_of(directory) -> dict[str, bytes]:
    """Every output file below `directory` (relative name -> bytes); not the job's `_REPORT.json`, which
    records how the job ran (timings, workers), not what it wrote."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in set(names) - {"_REPORT.json"}:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


def assert_same_output(expected_dir, actual_dir) -> None:
    """Both directories hold the same files, byte for byte (`_SUCCESS` and its manifest included)."""
    expected, actual = files_of(expected_dir), files_of(actual_dir)
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name] == expected[name], f"{name} differs"


def summary_without_time(stderr: str) -> list[str]:
    """The summary lines a run prints after its progress, minus the elapsed time."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith(("job ", "  "))]
    return [ln.split(" succeeded in ")[0] if ln.startswith("job ") else ln for ln in lines]


@contextlib.contextmanager
def submitted_setting(spark_submit_env: dict, key: str, value: str):
    """`key=value` as spark-submit's `--conf` leaves it (a system property of its JVM), on the JVM that
    `spark_submit_env` leads to, until the block ends."""
    from py4j.java_gateway import GatewayParameters, JavaGateway

    gateway = JavaGateway(gateway_parameters=GatewayParameters(
        port=int(spark_submit_env["PYSPARK_GATEWAY_PORT"]), auth_token=spark_submit_env["PYSPARK_GATEWAY_SECRET"]))
    system = gateway.jvm.java.lang.System
    system.setProperty(key, value)
    try:
        yield
    finally:
        system.clearProperty(key)
        gateway.close()
