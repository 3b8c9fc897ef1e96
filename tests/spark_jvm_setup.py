"""The options every Spark JVM the tests start runs with, and the class-data archive they share.

A test's Spark run is seconds long, and most of a short JVM's CPU goes to its optimising JIT
compiler and its parallel collector's threads, which the two cores then share with the test's
other processes: the quick compiler alone and the serial collector halve a test run's CPU.

Of what is left, a third is loading and verifying Spark's classes. The JDK's class-data sharing maps
them from an archive instead: the first Spark test of the run makes one (`use_class_archive`: a
small Spark run whose JVM writes the classes it loaded when it exits), and every Spark JVM started
after that maps it (drivers, a standalone cluster's daemons and executors: one class path). A JVM
whose class path differed would quietly load its classes as before.

The options reach the drivers' JVMs through SPARK_SUBMIT_OPTS, which spark-submit adds to the JVM it
starts (a local run's executors are threads in it), and a cluster's executors through the drivers'
`spark.executor.extraJavaOptions`, given there as a system property, where spark-submit's `--conf`
would leave it. Not through a spark-defaults.conf: its directory would be on every JVM's class
path, and a JVM cannot use a class archive with a non-empty directory on its class path.
"""

from __future__ import annotations

import fcntl
import functools
import os
import subprocess
import sys
import warnings

SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"
ARCHIVE_DIR = "MRENGINE_TEST_SPARK_ARCHIVE_DIR"  # the run's directory for the archive (xdist's workers inherit it)
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # an archive a JVM cannot use is no warning on a run's output
MAKE_TIMEOUT = 300


def _archive() -> str:
    return os.path.join(os.environ[ARCHIVE_DIR], "spark-classes.jsa")


def jvm_options() -> str:
    """SHORT_LIVED_JVM, and the archive once there is one (a JVM given an archive file that does not
    exist gives up even the JDK's own)."""
    archive = _archive() if ARCHIVE_DIR in os.environ else ""
    if archive and os.path.exists(archive):
        return f"{SHORT_LIVED_JVM} -XX:SharedArchiveFile={archive} {QUIET}"
    return SHORT_LIVED_JVM


def submit_opts(options: str) -> str:
    """SPARK_SUBMIT_OPTS starting a driver's JVM, and its cluster's executors, with `options`."""
    return f'{options} "-Dspark.executor.extraJavaOptions={options}"'


@functools.cache
def use_class_archive() -> None:
    """Make the run's class archive if no test process has yet (one at a time: the others wait for
    it), and start this process's later Spark JVMs with it."""
    archive = _archive()
    with open(os.path.join(os.environ[ARCHIVE_DIR], "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = os.path.join(os.environ[ARCHIVE_DIR], "failed")
        if not os.path.exists(archive) and not os.path.exists(failed):
            _make(archive, failed)
    os.environ["SPARK_SUBMIT_OPTS"] = submit_opts(jvm_options())


# A small job on local Spark that loads most of what a test's run loads; the JVM has written the archive
# when its process ends.
_ARCHIVE_RUN = """
from pyspark import SparkConf, SparkContext
sc = SparkContext("local[2]", "class archive", conf=SparkConf().set("spark.ui.enabled", "false"))
sc.parallelize(["a b", "b c"] * 50, 4).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(int.__add__).collect()
gateway = sc._gateway
sc.stop()
gateway.shutdown()
gateway.proc.stdin.close()  # Spark's launcher ends the JVM when its stdin closes
gateway.proc.wait()
"""


def _make(archive: str, failed: str) -> None:
    """Run _ARCHIVE_RUN, its JVM writing the archive as it exits; under another name first, so that no
    JVM maps half of one."""
    partial = archive + ".partial"
    env = dict(os.environ, SPARK_SUBMIT_OPTS=f"{SHORT_LIVED_JVM} -XX:ArchiveClassesAtExit={partial}")
    proc = subprocess.run([sys.executable, "-c", _ARCHIVE_RUN], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=MAKE_TIMEOUT)
    if proc.returncode == 0 and os.path.exists(partial):
        os.rename(partial, archive)
        return
    with open(failed, "w", encoding="utf-8") as f:
        f.write(proc.stderr)
    warnings.warn(f"no class archive for the tests' Spark JVMs (they start without one, slower): the Spark run "
                  f"that makes it exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
