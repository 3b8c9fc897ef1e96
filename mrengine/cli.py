"""The `mrengine` command: run, master, worker, status, jobs, kill, verify. Thin: parse, call, map errors to exit codes."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys

import click
from click.core import ParameterSource

from .errors import MrEngineError, TaskFailedError, UsageError
from .tasks import DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_TIMEOUT

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'64MiB', '1k', '4096' -> bytes (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (try 4096, 64k, 64MiB, 1G)")
    scale = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    size = int(float(m.group(1)) * scale)
    if size <= 0:
        raise ValueError("size must be positive")
    return size


def parse_param(text: str) -> tuple[str, object]:
    """'epochs=20' -> ('epochs', 20); values that read as JSON are typed, the rest stay strings."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{text!r} is not NAME=VALUE")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


class _Size(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Pair(click.ParamType):
    name = "name=value"

    def __init__(self, typed: bool):
        self.typed = typed

    def convert(self, value, param, ctx):
        try:
            name, parsed = parse_param(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return name, parsed if self.typed else value.partition("=")[2]


def read_secret(path: str | None) -> bytes:
    if path is None:
        return b""
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--secret-file")
    if not secret:
        raise click.BadParameter(f"{path} is empty", param_hint="--secret-file")
    return secret


def params_of(typed_pairs, str_pairs) -> dict:
    """ctx.params from -p (typed) and -P (strings); a name given both ways is a contradiction."""
    params = dict(typed_pairs)
    both = sorted(params.keys() & dict(str_pairs).keys())
    if both:
        raise click.BadParameter(f"can't give {both[0]!r} both as -p and as -P", param_hint="-P")
    return {**params, **dict(str_pairs)}


def storage_options_of(pairs, endpoint_url: str | None) -> dict:
    """--storage-option pairs plus --endpoint-url, which is short for --storage-option endpoint_url=URL."""
    options = dict(pairs)
    if endpoint_url is not None:
        if options.get("endpoint_url", endpoint_url) != endpoint_url:
            raise click.BadParameter("can't give both --endpoint-url and --storage-option endpoint_url=... "
                                     "with different values", param_hint="--endpoint-url")
        options["endpoint_url"] = endpoint_url
    return options


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address(value: str, param_hint: str) -> tuple[str, int]:
    from .comm import parse_address

    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


def _master_address(ctx, param, value: str | None) -> str | None:
    """A --master to connect to: HOST:PORT with a port one can connect to (not 0)."""
    if value is not None and _address(value, "--master")[1] == 0:
        raise click.BadParameter(f"address {value!r} has port 0, which only a server binding may use; "
                                 f"give the master's port", param_hint="--master")
    return value


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _fail(exc: MrEngineError) -> None:
    click.echo(f"mrengine: error: {exc.message}", err=True)
    if isinstance(exc, TaskFailedError) and exc.traceback:
        click.echo(exc.traceback, err=True)
    sys.exit(exc.exit_code)


def _job_args(inputs: tuple) -> tuple[tuple, list]:
    """Split `run`'s positional arguments at `--`: inputs before it, an mrjob job's own arguments after."""
    argv = sys.argv[1:]
    if "--" not in argv:
        return inputs, []
    after = argv[argv.index("--") + 1:]
    return inputs[:len(inputs) - len(after)], list(after)


@click.group()
@click.version_option(package_name="mrengine")
def main() -> None:
    """mrengine: MapReduce jobs written as plain Python files."""


@main.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output directory (local path or fsspec URL).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Worker processes of the embedded cluster (ignored with --master).")
@click.option("--reducers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Reduce tasks for steps whose job file does not set num_reducers.")
@click.option("--split-size", type=_Size(), default="64MiB", show_default=True, help="Bytes per input split.")
@click.option("-p", "--param", "params", type=_Pair(typed=True), multiple=True,
              help="NAME=VALUE, seen by the job as ctx.params[NAME]; a VALUE that reads as JSON is typed (20, 1.5, true, "
                   "[1, 2]), any other stays a string. Repeatable.")
@click.option("-P", "--str-param", "str_params", type=_Pair(typed=False), multiple=True,
              help="NAME=VALUE whose VALUE stays a string as written (ver=1.10 is '1.10', not 1.1). Repeatable.")
@click.option("--storage-option", "storage_options", type=_Pair(typed=True), multiple=True,
              help="KEY=VALUE passed to fsspec for every input and output URL (e.g. profile=NAME, anon=true); repeatable.")
@click.option("--endpoint-url", default=None, metavar="URL", help="Endpoint of an S3-compatible store (default: AWS_ENDPOINT_URL, else AWS).")
@click.option("--overwrite", is_flag=True, help="Replace an output directory that already holds files.")
@click.option("--sort-buffer-mb", type=click.IntRange(min=1), default=100, show_default=True,
              help="Memory for map output before it spills to disk.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=DEFAULT_MAX_ATTEMPTS, show_default=True, help="Attempts per task before the job fails.")
@click.option("--task-timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TASK_TIMEOUT, show_default=True,
              help="Seconds an attempt may make no progress (read or write nothing) before it is killed as failed.")
@click.option("--task-memory-mb", type=click.IntRange(min=16), default=None,
              help="Memory (resident set) an attempt may use before it is killed as failed "
                   "[default: the worker's, 3/4 of its RAM shared among its slots].")
@click.option("--skip-bad-records", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Skip a record (a reduce key) that two attempts of the job's code failed on, listing it in "
                   "OUT/_skipped/; the job fails once more than N are skipped. 0: a failing record fails the job.")
@click.option("--master", default=None, callback=_master_address,
              help="HOST:PORT of a running master; without it an embedded cluster runs the job.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
@click.option("--encrypt", is_flag=True, help="Encrypt the embedded cluster's connections (for a cluster of "
              "several hosts, give --encrypt to its master).")
@click.option("--verbose", is_flag=True, help="Show the embedded cluster's (or Spark's) logs.")
@click.option("--counters", "all_counters", is_flag=True,
              help="List every counter in the summary, mrengine's own (records, bytes, spills, ...) beside the job's.")
@click.option("--runner", type=click.Choice(["native", "spark"]), default="native", show_default=True,
              help="native: mrengine's own master and workers; spark: Apache Spark (pip install 'mrengine[spark]').")
@click.option("--spark-master", default=None, help="Spark master URL for --runner spark: local[N], spark://HOST:PORT, yarn, "
              "k8s://... (default local[*]; under spark-submit, its --master).")
@click.option("--spark-conf", "spark_conf", type=_Pair(typed=False), multiple=True,
              help="KEY=VALUE Spark setting for --runner spark, e.g. spark.executor.memory=4g (repeatable).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
              default="INFO", show_default=True, help="Log records of the job's code kept in each attempt's log.")
@click.option("--ui", "serve_ui", is_flag=True, help="Serve the web UI of the embedded cluster while the job runs "
              "(its URL goes to stderr).")
@click.option("--history-dir", default=None, metavar="DIR", help="Where finished jobs' records go (default "
              "$XDG_STATE_HOME/mrengine/history, else ~/.local/state/mrengine/history).")
def run(job_file, inputs, output, workers, reducers, split_size, params, str_params, storage_options, endpoint_url,
        overwrite, sort_buffer_mb, max_attempts, task_timeout, task_memory_mb, skip_bad_records, master, secret_file,
        encrypt, verbose, all_counters, runner, spark_master, spark_conf, log_level, serve_ui, history_dir):
    """Run JOB_FILE over INPUTS (files, directories, globs; local or fsspec URLs) into OUTPUT."""
    if runner != "spark" and (spark_master or spark_conf):
        raise click.BadParameter("--spark-master and --spark-conf go with --runner spark", param_hint="--runner")
    if runner == "spark" and master:
        raise click.BadParameter("can't give both --master (a native cluster) and --runner spark; "
                                 "use --spark-master for Spark's", param_hint="--master")
    if serve_ui and (master or runner == "spark"):
        raise click.BadParameter("--ui serves the embedded cluster's UI; a running master serves its own "
                                 "(`mrengine master --http`), Spark its own", param_hint="--ui")
    if skip_bad_records and runner == "spark":
        raise click.BadParameter("--skip-bad-records needs mrengine's own master, which remembers the records each "
                                 "task failed on; Spark retries a task whole and cannot be told which records to "
                                 "pass over", param_hint="--skip-bad-records")
    from .job import import_job_libraries, load_job
    from .steps import RunOptions
    from .storage import absolute_url

    signal.signal(signal.SIGTERM, _interrupt)  # stop the embedded cluster on the way out
    opts = RunOptions(reducers=reducers, split_size=split_size, params=params_of(params, str_params),
                      storage_options=storage_options_of(storage_options, endpoint_url),
                      sort_buffer_mb=sort_buffer_mb, max_attempts=max_attempts, overwrite=overwrite,
                      log_level=log_level.upper(), task_timeout=task_timeout, task_memory_mb=task_memory_mb,
                      skip_bad_records=skip_bad_records)
    inputs, job_args = _job_args(inputs)
    inputs, output = [absolute_url(p) for p in inputs], absolute_url(output)  # as the user meant them, here
    def load():
        job = load_job(job_file, job_args)
        if skip_bad_records and job.main is not None:
            raise UsageError(f"--skip-bad-records applies to jobs of steps; {job_file} defines main(ctx), whose "
                             f"rounds' results it reads back itself: catch a bad record in its code instead")
        return job

    import_job_libraries(job_file)  # before an embedded cluster's fork, which then shares them
    try:
        summary = _on_runner(load, inputs, output, opts, runner=runner, master=master, secret_file=secret_file,
                             workers=workers, encrypt=encrypt, verbose=verbose, spark_master=spark_master,
                             spark_conf=dict(spark_conf), serve_ui=serve_ui, history_dir=history_dir)
    except MrEngineError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("mrengine: interrupted", err=True)
        sys.exit(130)
    for line in summary.lines(all_counters):
        click.echo(line, err=True)
    _done()


def _done() -> None:
    """End a finished run at once: its cluster is stopped and its output written, and tearing down
    the interpreter's modules one by one would add a tenth of a second to every small job."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _on_runner(load, inputs, output: str, opts, *, runner: str, master, secret_file, workers: int, encrypt: bool,
               verbose: bool, spark_master, spark_conf: dict, serve_ui: bool = False, history_dir: str | None = None):
    """`Runner.run` of the job `load()` gives on the runner asked for: Spark, a cluster's master, or an
    embedded cluster (started first: its processes are forked before the job file is imported)."""
    from . import history
    from .cluster import EmbeddedCluster
    from .driver import Driver

    history_dir = history_dir or history.default_dir()
    if runner == "spark":
        from .runner import Recorded
        from .spark import SparkRunner

        job = load()
        with SparkRunner(spark_master, _spark_settings(spark_conf, opts.max_attempts), opts.max_attempts,
                         f"mrengine {job.name}", verbose) as spark:
            return Recorded(spark, history_dir, "spark").run(job, inputs, output, opts)
    if master:
        job = load()
        with Driver(master, read_secret(secret_file)) as driver:
            return driver.run(job, inputs, output, opts)
    with EmbeddedCluster(workers, verbose=verbose, encrypt=encrypt, ui=serve_ui, history_dir=history_dir) as cluster:
        job = load()
        with Driver(cluster.address, cluster.secret) as driver:
            if cluster.ui_url:
                click.echo(f"mrengine: web UI at {cluster.ui_url} while the job runs", err=True)
            return driver.run(job, inputs, output, opts)


def _spark_settings(spark_conf: dict, max_attempts: int) -> dict:
    """--spark-conf's settings, and a --max-attempts given on the command line as spark.task.maxFailures
    (unless --spark-conf sets that): the user's flag then wins over spark-submit's --conf, as spark-submit's
    wins over mrengine's default."""
    given = click.get_current_context().get_parameter_source("max_attempts") is ParameterSource.COMMANDLINE
    return {"spark.task.maxFailures": str(max_attempts), **spark_conf} if given else spark_conf


@main.command("streaming", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("hadoop_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Worker processes of the embedded cluster.")
@click.option("--split-size", type=_Size(), default="64MiB", show_default=True, help="Bytes per input split.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=DEFAULT_MAX_ATTEMPTS, show_default=True,
              help="Attempts per task before the job fails.")
@click.option("--master", default=None, callback=_master_address, help="HOST:PORT of a running master (default: an embedded cluster).")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
@click.option("--encrypt", is_flag=True, help="Encrypt the embedded cluster's connections.")
@click.option("--runner", type=click.Choice(["native", "spark"]), default="native", show_default=True)
@click.option("--spark-master", default=None, help="Spark master URL for --runner spark.")
@click.option("--verbose", is_flag=True, help="Show the embedded cluster's (or Spark's) logs.")
def streaming(hadoop_args, workers, split_size, max_attempts, master, secret_file, encrypt, runner, spark_master, verbose):
    """Run a Hadoop Streaming job: -input IN -output OUT -mapper CMD [-reducer CMD|NONE] [-combiner CMD]
    [-numReduceTasks N] [-partitioner CLASS] [-inputformat CLASS] [-D k=v] [-file F] [-files F,G] [-cmdenv K=V]."""
    from .steps import RunOptions
    from .storage import absolute_url
    from .streaming import job_spec, parse

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stream = parse(list(hadoop_args))
        job = job_spec(stream)
        opts = RunOptions(reducers=max(stream.reducers, 1), split_size=split_size, max_attempts=max_attempts,
                          overwrite="-overwrite" in hadoop_args)
        inputs, output = [absolute_url(p) for p in stream.inputs], absolute_url(stream.output)
        summary = _on_runner(lambda: job, inputs, output, opts, runner=runner, master=master,
                             secret_file=secret_file, workers=workers, encrypt=encrypt, verbose=verbose,
                             spark_master=spark_master, spark_conf={})
    except MrEngineError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("mrengine: interrupted", err=True)
        sys.exit(130)
    for line in summary.lines():
        click.echo(line, err=True)
    _done()


@main.command("master")
@click.option("--bind", default="127.0.0.1:7070", show_default=True, help="HOST:PORT to listen on (port 0: any free port).")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret (required off loopback; "
              "on loopback, without it, the master makes a new one in a file only you can read and prints its path).")
@click.option("--worker-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds of silence after which a worker is declared dead.")
@click.option("--backup-after", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds a task must have run (and twice its finished peers' median) before it may get a backup "
                   "attempt near the end of its phase; 0 disables backup attempts.")
@click.option("--driver-grace", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds a running job may go without its driver asking for its status (Ctrl-C, killed, cut "
                   "off) before it is cancelled.")
@click.option("--encrypt", is_flag=True, help="Encrypt every connection of the cluster (AES-256-GCM): drivers', workers' "
              "and, once the workers learn it from the master, the map outputs they serve.")
@click.option("--http", "http_bind", default=None, metavar="HOST:PORT",
              help="Serve the web UI and JSON API here (off loopback it needs --secret-file and asks for the UI token).")
@click.option("--history-dir", default=None, metavar="DIR", help="Where finished jobs' records go (default "
              "$XDG_STATE_HOME/mrengine/history, else ~/.local/state/mrengine/history).")
@click.option("--ready-file", default=None, hidden=True)
def master_cmd(bind, secret_file, worker_timeout, backup_after, driver_grace, encrypt, http_bind, history_dir, ready_file):
    """Run a master: it schedules jobs onto the workers that connect to it."""
    from . import master

    host, port = _address(bind, "--bind")
    secret = read_secret(secret_file)
    if not secret and not _is_loopback(host):
        raise click.BadParameter(f"binding {host} (not loopback) needs --secret-file: anyone who can reach the master could run code",
                                 param_hint="--bind")
    from . import history

    # Before a secret of the master's own is made: a UI off loopback needs the one the user gave.
    ui_bind, ui_token = _ui_bind(http_bind, secret) if http_bind else (None, None)
    made_secret_file = None
    if not secret:
        made_secret_file, secret = _new_secret_file(host, port)
    try:
        master.main(host, port, secret, worker_timeout, ready_file, backup_after, encrypt,
                    history_dir or history.default_dir(), ui_bind, ui_token, driver_grace)
    except MrEngineError as exc:
        _fail(exc)
    finally:
        if made_secret_file:
            os.unlink(made_secret_file)


def _new_secret_file(host: str, port: int) -> tuple[str, bytes]:
    """A master always authenticates: without --secret-file it makes a secret of its own."""
    from . import keyfile

    try:
        path, secret = keyfile.create(host, port)
    except OSError as exc:
        raise click.BadParameter(f"no --secret-file given, and a new secret cannot be written to "
                                 f"{keyfile.secret_dir()}: {exc.strerror}; pass --secret-file FILE",
                                 param_hint="--secret-file") from None
    click.echo(f"mrengine master: no --secret-file given: made a new secret in {path} (readable only by you); "
               f"start workers and drivers on this host with --secret-file {path}", err=True)
    return path, secret


def _ui_bind(value: str, secret: bytes) -> tuple[tuple[str, int], str | None]:
    """Where the web UI listens, and the token it asks for: none on loopback, one derived from the secret elsewhere."""
    from .ui.server import token_of

    host, port = _address(value, "--http")
    if _is_loopback(host):
        return (host, port), None
    if not secret:
        raise click.BadParameter(f"serving the web UI on {host} (not loopback) needs --secret-file: its token is "
                                 f"derived from the cluster secret (`mrengine ui-token`)", param_hint="--http")
    return (host, port), token_of(secret)


@main.command("worker")
@click.option("--master", "master_address", required=True, help="HOST:PORT of the master.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
@click.option("--slots", type=click.IntRange(min=1), default=1, show_default=True, help="Attempts run at once (one process each).")
@click.option("--work-dir", default=None, help="Directory for map outputs (default ./mrengine-work).")
@click.option("--bind", "bind_host", default=None, help="Address to serve map outputs on (default: the one that reaches the master).")
def worker_cmd(master_address, secret_file, slots, work_dir, bind_host):
    """Run a worker: it takes tasks from the master and serves its map outputs to reducers."""
    from . import worker

    master_host, _ = _address(master_address, "--master")
    secret = read_secret(secret_file)
    host = bind_host or ("127.0.0.1" if _is_loopback(master_host) else "0.0.0.0")
    if not secret and not _is_loopback(host):
        raise click.BadParameter("serving map outputs off loopback needs --secret-file", param_hint="--bind")
    try:
        worker.main(master_address, secret, slots, work_dir, host)
    except MrEngineError as exc:
        _fail(exc)


@main.command()
@click.option("--master", "master_address", default="127.0.0.1:7070", show_default=True, callback=_master_address,
              help="HOST:PORT of the master.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--tasks", "all_tasks", is_flag=True, help="Show the tasks and attempts of finished jobs too.")
def status(master_address, secret_file, as_json, all_tasks):
    """Show a master's workers, its jobs, and the tasks and attempts of running jobs."""
    from .driver import cluster_status
    from .messages import to_wire

    reply = _ask_master(master_address, secret_file, lambda conn: cluster_status(conn, all_tasks))
    if as_json:
        click.echo(json.dumps(to_wire(reply), indent=1))
        return
    click.echo(f"workers ({sum(w.alive for w in reply.workers)} alive):")
    for w in reply.workers:
        state = "alive" if w.alive else "dead"
        click.echo(f"  {w.id:6} {state:5} {w.host} pid {w.pid} shuffle {w.shuffle} slots {w.slots} "
                   f"running {len(w.running)} last heard {w.last_seen}s ago")
    click.echo("jobs:")
    for j in reply.jobs:
        c = j.counts
        click.echo(f"  {j.id} {j.name} step {j.step} {j.state}: map {c.maps_done}/{c.maps} "
                   f"reduce {c.reduces_done}/{c.reduces} attempts {c.attempts} {j.elapsed}s")
        if j.error:
            click.echo(f"    error: {j.error.splitlines()[0]}")
        for t in j.tasks or ():
            if t.attempts:
                click.echo(f"    {t.kind:6} {t.index:5} {t.state:9} " + ", ".join(map(_attempt_text, t.attempts)))


@main.command()
@click.option("--master", "master_address", default="127.0.0.1:7070", show_default=True, callback=_master_address,
              help="HOST:PORT of the master.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
def jobs(master_address, secret_file):
    """List a master's jobs: id, state, name, progress, seconds."""
    from .driver import cluster_status

    reply = _ask_master(master_address, secret_file, cluster_status)
    for j in reply.jobs:
        c = j.counts
        click.echo(f"{j.id}  {j.state:9}  {j.name} step {j.step}  map {c.maps_done}/{c.maps} "
                   f"reduce {c.reduces_done}/{c.reduces}  {j.elapsed}s")


@main.command()
@click.argument("job_id")
@click.option("--master", "master_address", default="127.0.0.1:7070", show_default=True, callback=_master_address,
              help="HOST:PORT of the master.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret.")
def kill(job_id, master_address, secret_file):
    """Cancel a running job: its attempts are killed and its temporary files and committed parts removed."""
    from .driver import kill_job

    _ask_master(master_address, secret_file, lambda conn: kill_job(conn, job_id))
    click.echo(f"job {job_id} cancelled", err=True)


def _ask_master(master_address: str, secret_file: str | None, ask):
    """`ask(connection)` of the master; its error reply (or failing to reach it) ends the command."""
    from .driver import connect_master

    try:
        conn = connect_master(master_address, read_secret(secret_file))
        try:
            return ask(conn)
        finally:
            conn.close()
    except MrEngineError as exc:
        _fail(exc)


def _attempt_text(a) -> str:
    took = f" {a.seconds}s" if a.seconds is not None else ""
    return f"{a.id}@{a.worker} {a.state}{took}{' (backup)' if a.backup else ''}"


@main.command()
@click.argument("output")
@click.option("--storage-option", "storage_options", type=_Pair(typed=True), multiple=True,
              help="KEY=VALUE passed to fsspec (as for run); repeatable.")
@click.option("--endpoint-url", default=None, metavar="URL", help="Endpoint of an S3-compatible store (default: AWS_ENDPOINT_URL, else AWS).")
def verify(output, storage_options, endpoint_url):
    """Re-read OUTPUT's part files and check them against the manifest in its _SUCCESS.

    Exit code 0 when every part's size, CRC-32 and record count match, 1 when something differs, 2 when
    OUTPUT is not a finished mrengine output (no _SUCCESS manifest), 3 when it cannot be read.
    """
    from . import outputs

    try:
        report = outputs.verify(output, storage_options_of(storage_options, endpoint_url))
    except MrEngineError as exc:
        _fail(exc)
    for line in report.lines():
        click.echo(line, err=bool(report.problems))
    if report.problems:
        sys.exit(1)


_HISTORY_DIR = click.option("--history-dir", default=None, metavar="DIR",
                            help="The history directory (default $XDG_STATE_HOME/mrengine/history, else "
                                 "~/.local/state/mrengine/history).")


@main.command("history")
@click.argument("job", required=False)
@_HISTORY_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the record (or the list) as JSON.")
def history_cmd(job, history_dir, as_json):
    """List past jobs, or show JOB's record (its id, e.g. job0003, or its record's name)."""
    from . import history

    directory = history_dir or history.default_dir()
    try:
        if job:
            record = history.find(directory, job)
            click.echo(json.dumps(record, indent=1) if as_json else "\n".join(history.describe(record)))
            return
    except MrEngineError as exc:
        _fail(exc)
    records = history.load_all(directory)
    if as_json:
        click.echo(json.dumps([history.brief(r) for r in records], indent=1))
        return
    for r in records:
        click.echo(history.one_line(r))
    if not records:
        click.echo(f"no jobs in the history at {directory}", err=True)


@main.command("logs")
@click.argument("job")
@click.argument("task", required=False)
@_HISTORY_DIR
@click.option("--master", "master_address", default=None, callback=_master_address, metavar="HOST:PORT",
              help="Ask this running master (for the jobs it holds) instead of reading the history.")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret (with --master).")
def logs_cmd(job, task, history_dir, master_address, secret_file):
    """Print the output of JOB's attempts (those of TASK alone: an attempt id like m00003.0, or a task like m00003)."""
    from . import history

    if master_address is not None:
        from .driver import attempt_logs

        shown = _ask_master(master_address, secret_file, lambda conn: attempt_logs(conn, job, task))
    else:
        try:
            record = history.find(history_dir or history.default_dir(), job)
            shown = history.attempt_logs(record, task)
        except MrEngineError as exc:
            _fail(exc)
    for attempt_id, text in shown:
        click.echo(f"==> {attempt_id} <==")
        click.echo(text, nl=not text.endswith("\n"))


@main.command("ui")
@click.option("--history", "history_dir", default=None, metavar="DIR",
              help="Serve the job records of this history directory (default: the user's).")
@click.option("--http", "http_bind", default="127.0.0.1:18080", show_default=True, metavar="HOST:PORT",
              help="Where to serve (off loopback it needs --secret-file and asks for the UI token).")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret (for a bind off loopback).")
def ui_cmd(history_dir, http_bind, secret_file):
    """Serve past jobs' pages from a history directory, as the master's web UI shows live ones."""
    from . import history
    from .ui.server import UIServer
    from .ui.source import HistorySource

    (host, port), token = _ui_bind(http_bind, read_secret(secret_file))
    try:
        server = UIServer(HistorySource(history_dir or history.default_dir()), host, port, token)
    except OSError as exc:
        from .errors import ClusterError

        _fail(ClusterError(f"cannot listen on {http_bind}: {exc.strerror}"))
    click.echo(f"mrengine: history UI at {server.url}", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@main.command("ui-token")
@click.option("--secret-file", required=True, help="File holding the cluster's shared secret.")
def ui_token_cmd(secret_file):
    """Print the web UI's token (bearer token, or basic-auth password) for a cluster secret."""
    from .ui.server import token_of

    click.echo(token_of(read_secret(secret_file)))
