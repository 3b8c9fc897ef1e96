"""Starting and stopping Spark for one `mrengine run`, and saying in one paragraph why it would not start.

Before any JVM starts, the runner checks what it can check quickly: that pyspark imports, that there
is a `java` (where Spark's own launcher looks: `$JAVA_HOME/bin/java`, else `java` on PATH), and for a
`spark://` master that a TCP connection reaches it. Spark itself would take a minute of retries to
give up on an unreachable master; a connection attempt takes seconds.

Spark's own output (the JVM's log and the executors' Python stderr) goes to a log file, not to the
user's terminal; an error message names the file. `--verbose` lets it through instead.

Under `spark-submit` the JVM is already running (pyspark finds its gateway in PYSPARK_GATEWAY_PORT):
the run takes that JVM as it is, with spark-submit's settings below --spark-master and --spark-conf,
and leaves it running; its output is spark-submit's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import zipfile

from ..errors import ClusterError
from ..tasks import DEFAULT_MAX_ATTEMPTS

DEFAULT_MASTER = "local[*]"
CONNECT_TIMEOUT = 10.0  # seconds to reach a spark:// master
START_TIMEOUT = 120.0  # seconds for the SparkContext to come up once the JVM runs (the master answers)
STOP_TIMEOUT = 30.0

_LOCAL = re.compile(r"^local(\[(\*|\d+)\])?$")  # local, local[N], local[*]: no retries unless given
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_pyspark():
    try:
        import pyspark
        from pyspark.java_gateway import launch_gateway
    except ImportError as exc:
        raise ClusterError(
            f"--runner spark needs pyspark, which cannot be imported here ({exc}); install it with "
            "pip install 'mrengine[spark]' (Spark also needs Java 17 or newer)"
        ) from None
    return pyspark, launch_gateway


def find_java() -> str:
    """The java Spark's launcher will run; ClusterError if there is none."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        if not os.access(java, os.X_OK):
            raise ClusterError(
                f"--runner spark needs Java 17 or newer, but JAVA_HOME is {home!r}, which holds no bin/java; "
                "point JAVA_HOME at a Java installation (or unset it to use java from PATH)"
            )
        return java
    java = shutil.which("java")
    if java is None:
        raise ClusterError(
            "--runner spark needs Java 17 or newer, and there is no java on PATH and no JAVA_HOME; install a "
            "JDK or JRE (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def check_master(master: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """For spark://HOST:PORT[,HOST:PORT...] masters, check that one of them accepts a connection."""
    if not master.startswith("spark://"):
        return
    errors = []
    for address in master[len("spark://"):].split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ClusterError(f"--spark-master {master!r} is not spark://HOST:PORT")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
    raise ClusterError(
        f"cannot reach the Spark master {master} ({'; '.join(errors)}); check that the master runs and that "
        "this host can reach it, or give another --spark-master"
    )


def settings(master: str | None, user_conf: dict, max_attempts: int, app_name: str, submitted: dict | None = None) -> dict:
    """The Spark configuration a run starts with: mrengine's defaults, under spark-submit's settings
    (`submitted`; but not its app name, which is only its script's file name), under the user's
    --spark-conf. `master` (--spark-master, or None) wins over spark-submit's."""
    submitted = {k: v for k, v in (submitted or {}).items() if k != "spark.app.name"}
    conf = {
        "spark.app.name": app_name,
        "spark.ui.showConsoleProgress": "false",  # the runner prints its own progress line
        "spark.task.maxFailures": str(max_attempts),
        **submitted,
        "spark.master": master or submitted.get("spark.master", DEFAULT_MASTER),
    }
    master = conf["spark.master"]
    m = _LOCAL.match(master)
    if m:
        # Local mode ignores spark.task.maxFailures; local[N,F] is how it retries.
        retries = user_conf.get("spark.task.maxFailures", submitted.get("spark.task.maxFailures", max_attempts))
        conf["spark.master"] = f"local[{m.group(2) or 1},{retries}]"
    conf.update(user_conf)
    return conf


class Spark:
    """A SparkContext for one run, as a context manager: `with Spark(...) as spark: spark.sc...`."""

    def __init__(self, master: str | None = None, conf: dict | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 app_name: str = "mrengine", verbose: bool = False):
        self._settings = (master, dict(conf or {}), max_attempts, app_name)
        self.conf = settings(*self._settings)  # until a spark-submit JVM's own settings are read
        self.verbose = verbose
        self.sc = None
        self.log_path = ""
        self._tmp = ""
        self._proc = None  # the JVM this run started
        self._submitted = None  # or the gateway of the one spark-submit started

    # ------------------------------------------------------------ starting

    def __enter__(self) -> "Spark":
        pyspark, launch_gateway = _import_pyspark()
        if not submitted():
            find_java()
            check_master(self.conf["spark.master"])
        self._tmp = tempfile.mkdtemp(prefix="mrengine-spark-")
        try:
            self._start(pyspark, launch_gateway)
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(keep_log=isinstance(exc, ClusterError))  # the errors whose messages point at the log

    def _start(self, pyspark, launch_gateway) -> None:
        gateway = self._attach(pyspark, launch_gateway) if submitted() else self._launch(pyspark, launch_gateway)
        conf = pyspark.SparkConf(loadDefaults=False).setAll(list(self.conf.items()))
        started: dict = {}

        def create() -> None:
            try:
                started["sc"] = pyspark.SparkContext(conf=conf, gateway=gateway)
            except BaseException as exc:
                started["error"] = exc

        thread = threading.Thread(target=create, name="spark-start", daemon=True)
        thread.start()
        thread.join(START_TIMEOUT)
        if thread.is_alive():
            raise ClusterError(f"Spark did not start within {START_TIMEOUT:.0f}s on master {self.conf['spark.master']}; "
                               f"{self.log_note}")
        if "error" in started:
            raise self.error(f"Spark did not start on master {self.conf['spark.master']}", started["error"]) from None
        self.sc = started["sc"]
        # A standalone master that never answered: Spark gave up after its own retries, stops the context,
        # and the application keeps the placeholder id it had before registering ("spark-application-...").
        unregistered = self.conf["spark.master"].startswith("spark://") and not self.sc.applicationId.startswith("app-")
        if unregistered or self.sc._jsc.sc().isStopped():
            raise ClusterError(f"Spark stopped as soon as it started: the master {self.conf['spark.master']} did not "
                               f"take the application (is it a Spark master, of version {self.sc.version}?); "
                               f"{self.log_note}")
        try:
            self.sc.setLogLevel("WARN")
            self.sc.addPyFile(self._package_zip())
        except Exception as exc:
            raise self.error("Spark did not accept mrengine's code", exc) from None

    def _launch(self, pyspark, launch_gateway):
        """A JVM of this run's own, its output in the log file; its gateway."""
        self._choose_executor_python()
        if self.local:
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver, its UI and block manager stay on loopback
        fd, self.log_path = tempfile.mkstemp(prefix="mrengine-spark-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            popen = {} if self.verbose else {"stdout": log, "stderr": log}
            try:
                gateway = launch_gateway(pyspark.SparkConf(loadDefaults=False).setAll(list(self.conf.items())),
                                         popen_kwargs=popen)
            except Exception:
                raise ClusterError(f"Spark's JVM did not start: {self._why_jvm_ended()}; {self.log_note}") from None
        self._proc = gateway.proc
        return gateway

    def _attach(self, pyspark, launch_gateway):
        """The gateway of the JVM spark-submit started; the run's settings then include spark-submit's."""
        try:
            gateway = launch_gateway()
            submitted_conf = dict(pyspark.SparkConf(_jvm=gateway.jvm).getAll())  # spark-submit's, as system properties
        except Exception as exc:
            raise ClusterError(f"cannot reach the Spark JVM that spark-submit started (PYSPARK_GATEWAY_PORT="
                               f"{os.environ['PYSPARK_GATEWAY_PORT']}): {java_message(exc)}; run mrengine under "
                               "spark-submit, or without PYSPARK_GATEWAY_PORT in its environment") from None
        self._submitted = gateway
        self.conf = settings(*self._settings, submitted=submitted_conf)
        self._choose_executor_python()
        check_master(self.conf["spark.master"])
        return gateway

    def _choose_executor_python(self) -> None:
        # pyspark reads PYSPARK_PYTHON as the context starts: the executors run this Python unless told otherwise.
        os.environ["PYSPARK_PYTHON"] = self.conf.get("spark.pyspark.python", os.environ.get("PYSPARK_PYTHON", sys.executable))

    @property
    def log_note(self) -> str:
        """Where Spark's own output went, for an error message."""
        return f"Spark's log is in {self.log_path}" if self.log_path else "Spark's log is spark-submit's output"

    def _package_zip(self) -> str:
        """mrengine itself as a zip for the executors: a cluster needs only mrengine's dependencies installed."""
        path = os.path.join(self._tmp, "mrengine.zip")
        root = os.path.dirname(_PACKAGE_DIR)
        with zipfile.ZipFile(path, "w") as z:
            for folder, _, files in os.walk(_PACKAGE_DIR):
                for name in files:
                    if name.endswith(".py"):
                        full = os.path.join(folder, name)
                        z.write(full, os.path.relpath(full, root))
        return path

    # ------------------------------------------------------------ errors

    def error(self, what: str, exc: BaseException) -> ClusterError:
        """One paragraph for a failure inside Spark: the Java exception's first line, not its stack."""
        return ClusterError(f"{what}: {java_message(exc)}; {self.log_note}")

    def _why_jvm_ended(self) -> str:
        # Its first error line says why (a Java too old for Spark: UnsupportedClassVersionError); the
        # launcher script's complaints follow it.
        with open(self.log_path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "Exception" in ln]
        return (errors or lines or ["it printed nothing"])[0]

    @property
    def local(self) -> bool:
        return self.conf["spark.master"].startswith("local")

    def executors(self) -> int:
        infos = self.sc.statusTracker().getExecutorInfos()
        return len(infos) if self.local else max(len(infos) - 1, 0)  # the driver is listed too

    # ------------------------------------------------------------ stopping

    def stop(self, keep_log: bool = False) -> None:
        """Stop the context, and its JVM if this run started it; the log file stays only when something went wrong."""
        from pyspark import SparkContext

        if self.sc is not None:
            try:
                self.sc.stop()
            except Exception:
                keep_log = True
            self.sc = None
        if self._proc is not None:
            gateway = SparkContext._gateway
            if gateway is not None:
                with contextlib.suppress(Exception):  # a JVM that already died cannot be told to stop
                    gateway.shutdown()
            SparkContext._gateway = SparkContext._jvm = None  # a later Spark() starts a fresh JVM
            self._proc.stdin.close()  # Spark's launcher ends the JVM when its stdin closes
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT)
            self._proc = None
        if self._submitted is not None:
            with contextlib.suppress(Exception):
                self._submitted.close()  # this process's connections only: the JVM is spark-submit's to end
            SparkContext._gateway = SparkContext._jvm = None  # a later Spark() finds its own JVM
            self._submitted = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self.log_path and not keep_log:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.log_path)
            self.log_path = ""


def submitted() -> bool:
    """Whether this process runs under spark-submit, which started a JVM and left its gateway's port here."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def java_message(exc: BaseException) -> str:
    """The message of a Py4J/Java exception without the Java stack: its first line, class name dropped."""
    try:
        java = getattr(exc, "java_exception", None)
        text = str((java.getMessage() if java is not None else None) or exc)
    except Exception:  # the JVM is gone
        text = ""
    text = text or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return re.sub(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ", "", line)
