"""Running mrengine's CLI and comparing output directories, for the Spark runner's tests."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = os.path.join(ROOT, "tests", "jobs")
TEXT = os.path.join(ROOT, "sample_data", "text")
RUN_TIMEOUT = 300.0  # one CLI run, Spark's start-up included, on 2 busy cores


def python(*args: str, env: dict | None = None, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """`python ARGS` from the repository root; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout)


def mrengine(*args: str, env: dict | None = None, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return python("-m", "mrengine", *args, env=env, timeout=timeout)


def run_native(job: str, out: str, *args: str, inputs: str = TEXT) -> subprocess.CompletedProcess:
    result = mrengine("run", job, inputs, "-o", str(out), "--workers", "2", *args)
    assert result.returncode == 0, result.stderr
    return result


def files_of(directory) -> dict[str, bytes]:
    """Every file below `directory` (relative name -> bytes)."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
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
