"""Shared helpers: run the real CLI in a subprocess, read part files, compute reference results."""

from __future__ import annotations

import compileall
import contextlib
import functools
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

import pytest

import spark_jvm_setup

pytest_plugins = ["module_order"]  # the modules, longest first, for xdist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_TEXT = os.path.join(REPO, "sample_data", "text")
JOBS = os.path.join(REPO, "jobs")
TEST_JOBS = os.path.join(REPO, "tests", "jobs")
PACKAGE = os.path.join(REPO, "mrengine", "")  # a traceback frame of mrengine's own code names a file below this


@functools.cache
def _spark_unavailable() -> str | None:
    """Why the Spark runner cannot run here, or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (Spark needs Java 17+, e.g. Debian's openjdk-17-jre-headless)"
    return None


def _import_error(code: str) -> str | None:
    """The last line of the error `code` raises in a fresh interpreter, or None if it runs."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return proc.stderr.strip().splitlines()[-1] if proc.returncode else None


@functools.cache
def mrjob_unavailable() -> str | None:
    """Why mrengine cannot run mrjob jobs here (None: it can): mrjob is missing, or does not import
    even with mrengine's stand-ins for the standard modules Python 3.12 dropped."""
    if importlib.util.find_spec("mrjob") is None:
        return "mrjob is not installed (pip install -e '.[mrjob]')"
    error = _import_error("from mrengine.mrjob import compat; compat.install(); import mrjob.job")
    return error and f"mrengine cannot import mrjob ({error})"


@functools.cache
def mrjob_runner_unavailable() -> str | None:
    """Why mrjob's own runner, the reference some tests compare with, cannot run here (None: it can)."""
    error = mrjob_unavailable() or _import_error("import mrjob.job")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return error and f"mrjob's own runner does not run on Python {version} ({error})"


_MADE_DIRS: list[str] = []  # what this process made for the whole run (xdist's workers inherit the controller's)


def _dir_for_the_run(variable: str, make) -> None:
    if variable not in os.environ:
        os.environ[variable] = make()
        _MADE_DIRS.append(os.environ[variable])


def pytest_configure(config):
    # Each test starts mrengine in new interpreters hundreds of times. Where the machine sets
    # PYTHONDONTWRITEBYTECODE, each would compile mrengine's sources again (0.15 s of CPU a start); an
    # installed package has its bytecode written at install, so the tests' interpreters keep it too.
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        compileall.compile_dir(os.path.join(REPO, "mrengine"), quiet=1)
    # Jobs the tests run leave history records (in the user's state directory by default): keep them out of ~.
    _dir_for_the_run("XDG_STATE_HOME", lambda: tempfile.mkdtemp(prefix="mrengine-test-state-"))
    if spark_jvm_setup.ARCHIVE_DIR not in os.environ:  # the controller's (xdist's workers inherit it, and then add the archive)
        os.environ["SPARK_SUBMIT_OPTS"] = spark_jvm_setup.submit_opts(spark_jvm_setup.SHORT_LIVED_JVM)
    _dir_for_the_run(spark_jvm_setup.ARCHIVE_DIR, lambda: tempfile.mkdtemp(prefix="mrengine-test-spark-classes-"))
    config.addinivalue_line("markers", "spark: runs jobs on a real Apache Spark (needs pyspark and Java 17+)")


def pytest_unconfigure(config):
    for path in _MADE_DIRS:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection, which must see the slow marker added here
def pytest_collection_modifyitems(config, items):
    """Spark tests are slow, and skip with the reason where Spark cannot run, unless CI requires them."""
    spark_items = [item for item in items if item.get_closest_marker("spark")]
    reason = _spark_unavailable() if spark_items else None
    if reason and os.environ.get("MRENGINE_REQUIRE_SPARK") == "1":
        raise pytest.UsageError(f"MRENGINE_REQUIRE_SPARK=1 but the Spark tests cannot run: {reason}")
    for item in spark_items:
        item.add_marker(pytest.mark.slow)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"Spark runner tests: {reason}"))


@pytest.hookimpl(tryfirst=True)  # before its fixtures start a JVM
def pytest_runtest_setup(item):
    if item.get_closest_marker("spark") and not _spark_unavailable():
        spark_jvm_setup.use_class_archive()


def run_cli(*args, timeout=300, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`mrengine ARGS...` as a user would run it; output captured as text."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mrengine", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL, **kwargs)


def part_files(out_dir) -> list[str]:
    return sorted(glob.glob(os.path.join(str(out_dir), "part-*")))


def read_bytes(out_dir) -> dict[str, bytes]:
    """{file name: content} of every part file and nothing else."""
    return {os.path.basename(p): open(p, "rb").read() for p in part_files(out_dir)}


def read_tsv(out_dir) -> dict[str, str]:
    result = {}
    for path in part_files(out_dir):
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, value = line.rstrip("\n").split("\t")
                assert key not in result, f"{key!r} appears in two part files"
                result[key] = value
    return result


def reference_wordcount(paths) -> Counter:
    counts = Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(line.split())
    return counts


SPARK_SESSION_ENV = ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")  # what starting Spark in this process sets for its workers


@contextlib.contextmanager
def environment_kept():
    """Put back, on leaving, the variables of SPARK_SESSION_ENV that starting Spark here sets, so
    later tests' Spark CLI runs start as they would alone."""
    saved = {name: os.environ.get(name) for name in SPARK_SESSION_ENV}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def spark_session(master: str, conf: dict, jvm: dict):
    """A `SparkRunner` on `master` in this process, on the running JVM `jvm` (the `spark_session_jvm`
    fixture), the environment as it was once it has started."""
    from mrengine.spark import SparkRunner

    with environment_kept():
        os.environ.update(jvm)
        runner = SparkRunner(master, conf).__enter__()  # its context has read PYSPARK_PYTHON by now
        for name in jvm:
            del os.environ[name]
    try:
        yield runner
    finally:
        runner.__exit__(None, None, None)


@pytest.fixture(scope="module")
def spark_runner(spark_session_jvm):
    """One Spark session on local[2] for a module's tests, driven through the `SparkRunner.run` the CLI
    calls: a small job on a running session costs a fraction of a second. It stops when the module's
    last test ends (--dist loadfile keeps a module on one worker; a JVM holds one SparkContext at a time)."""
    with spark_session("local[2]", {"spark.ui.enabled": "false"}, spark_session_jvm) as runner:
        yield runner


@pytest.fixture(scope="session")
def spark_session_jvm():
    """A JVM, as spark-submit starts one, for the Spark sessions this pytest process runs itself
    (`spark_session`): a JVM's start costs 6-8 s of CPU, a context on a warm one about one."""
    with _spark_jvm() as env:
        yield env


@pytest.fixture(scope="session")
def spark_submit_env():
    """The variables spark-submit gives the Python driver it starts (PYSPARK_GATEWAY_PORT and its
    secret), here of one JVM kept for the tests of this pytest process: a Spark CLI run given them
    (`run_cli(..., env=spark_submit_env)`) takes that JVM as it would spark-submit's, and leaves it
    running. Runs on it must not overlap; tests run one at a time (-n runs each module in one process)."""
    with _spark_jvm() as env:
        yield env


@contextlib.contextmanager
def _spark_jvm():
    """A Spark JVM as spark-submit leaves one for its Python driver; the variables that lead pyspark to it."""
    from pyspark import SparkConf
    from pyspark.java_gateway import launch_gateway

    log_dir = tempfile.mkdtemp(prefix="mrengine-test-spark-jvm-")
    with environment_kept(), open(os.path.join(log_dir, "jvm.log"), "wb") as log:
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # as a local run's own JVM would bind: loopback only
        gateway = launch_gateway(SparkConf(loadDefaults=False), popen_kwargs={"stdout": log, "stderr": log})
    try:
        yield {"PYSPARK_GATEWAY_PORT": str(gateway.gateway_parameters.port),
               "PYSPARK_GATEWAY_SECRET": gateway.gateway_parameters.auth_token}
    finally:
        with contextlib.suppress(Exception):
            gateway.shutdown()
        gateway.proc.stdin.close()  # Spark's launcher ends the JVM when its stdin closes
        gateway.proc.wait(60)
        shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch):
    """A TMPDIR of this test's own, so leftover temp files of a run can be seen (and other runs' cannot)."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp
