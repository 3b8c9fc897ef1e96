"""The `mrengine` command: run, master, worker, status, verify. Thin: parse, call, map errors to exit codes."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys

import click

from .errors import MrEngineError, TaskFailedError
from .tasks import DEFAULT_MAX_ATTEMPTS

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
              "k8s://... (default local[*]).")
@click.option("--spark-conf", "spark_conf", type=_Pair(typed=False), multiple=True,
              help="KEY=VALUE Spark setting for --runner spark, e.g. spark.executor.memory=4g (repeatable).")
def run(job_file, inputs, output, workers, reducers, split_size, params, str_params, storage_options, endpoint_url,
        overwrite, sort_buffer_mb, max_attempts, master, secret_file, encrypt, verbose, all_counters, runner, spark_master,
        spark_conf):
    """Run JOB_FILE over INPUTS (files, directories, globs; local or fsspec URLs) into OUTPUT."""
    if runner != "spark" and (spark_master or spark_conf):
        raise click.BadParameter("--spark-master and --spark-conf go with --runner spark", param_hint="--runner")
    if runner == "spark" and master:
        raise click.BadParameter("can't give both --master (a native cluster) and --runner spark; "
                                 "use --spark-master for Spark's", param_hint="--master")
    from .job import load_job
    from .steps import RunOptions

    signal.signal(signal.SIGTERM, _interrupt)  # stop the embedded cluster on the way out
    opts = RunOptions(reducers=reducers, split_size=split_size, params=params_of(params, str_params),
                      storage_options=storage_options_of(storage_options, endpoint_url),
                      sort_buffer_mb=sort_buffer_mb, max_attempts=max_attempts, overwrite=overwrite)
    try:
        inputs, job_args = _job_args(inputs)
        job = load_job(job_file, job_args)
        summary = _on_runner(job, inputs, output, opts, runner=runner, master=master, secret_file=secret_file,
                             workers=workers, encrypt=encrypt, verbose=verbose, spark_master=spark_master,
                             spark_conf=dict(spark_conf))
    except MrEngineError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("mrengine: interrupted", err=True)
        sys.exit(130)
    for line in summary.lines(all_counters):
        click.echo(line, err=True)


def _on_runner(job, inputs, output: str, opts, *, runner: str, master, secret_file, workers: int, encrypt: bool,
               verbose: bool, spark_master, spark_conf: dict):
    """`Runner.run` of the job on the runner asked for: Spark, a cluster's master, or an embedded cluster."""
    from .cluster import EmbeddedCluster
    from .driver import Driver

    if runner == "spark":
        from .spark import SparkRunner

        with SparkRunner(spark_master or "local[*]", spark_conf, opts.max_attempts, f"mrengine {job.name}",
                         verbose) as spark:
            return spark.run(job, inputs, output, opts)
    if master:
        with Driver(master, read_secret(secret_file)) as driver:
            return driver.run(job, inputs, output, opts)
    with EmbeddedCluster(workers, verbose=verbose, encrypt=encrypt) as cluster, \
            Driver(cluster.address, cluster.secret) as driver:
        return driver.run(job, inputs, output, opts)


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
    from .streaming import job_spec, parse

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stream = parse(list(hadoop_args))
        job = job_spec(stream)
        opts = RunOptions(reducers=max(stream.reducers, 1), split_size=split_size, max_attempts=max_attempts,
                          overwrite="-overwrite" in hadoop_args)
        summary = _on_runner(job, stream.inputs, stream.output, opts, runner=runner, master=master,
                             secret_file=secret_file, workers=workers, encrypt=encrypt, verbose=verbose,
                             spark_master=spark_master, spark_conf={})
    except MrEngineError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("mrengine: interrupted", err=True)
        sys.exit(130)
    for line in summary.lines():
        click.echo(line, err=True)


@main.command("master")
@click.option("--bind", default="127.0.0.1:7070", show_default=True, help="HOST:PORT to listen on (port 0: any free port).")
@click.option("--secret-file", default=None, help="File holding the cluster's shared secret (required off loopback; "
              "on loopback, without it, the master makes a new one in a file only you can read and prints its path).")
@click.option("--worker-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds of silence after which a worker is declared dead.")
@click.option("--backup-after", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds a task must have run (and twice its finished peers' median) before it may get a backup "
                   "attempt near the end of its phase; 0 disables backup attempts.")
@click.option("--encrypt", is_flag=True, help="Encrypt every connection of the cluster (AES-256-GCM): drivers', workers' "
              "and, once the workers learn it from the master, the map outputs they serve.")
@click.option("--ready-file", default=None, hidden=True)
def master_cmd(bind, secret_file, worker_timeout, backup_after, encrypt, ready_file):
    """Run a master: it schedules jobs onto the workers that connect to it."""
    from . import master

    host, port = _address(bind, "--bind")
    secret = read_secret(secret_file)
    if not secret and not _is_loopback(host):
        raise click.BadParameter(f"binding {host} (not loopback) needs --secret-file: anyone who can reach the master could run code",
                                 param_hint="--bind")
    made_secret_file = None
    if not secret:
        made_secret_file, secret = _new_secret_file(host, port)
    try:
        master.main(host, port, secret, worker_timeout, ready_file, backup_after, encrypt)
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
    from .driver import cluster_status, connect_master
    from .messages import to_wire

    try:
        conn = connect_master(master_address, read_secret(secret_file))
        try:
            reply = cluster_status(conn, all_tasks)
        finally:
            conn.close()
    except MrEngineError as exc:
        _fail(exc)
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
