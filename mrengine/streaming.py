"""Hadoop Streaming jobs: `mrengine streaming -input IN -output OUT -mapper CMD [-reducer CMD|NONE] ...`.

Flags and `-D` properties mean what they mean to Hadoop's StreamJob. The map task writes each input
record to the mapper command's stdin (with TextInputFormat the line alone, as
`stream.map.input.ignoreKey` defaults to; KeyValueTextInputFormat the key, the
`stream.map.input.field.separator` and the value) and cuts each line of its stdout into key and
value after `stream.num.map.output.key.fields` fields of `stream.map.output.field.separator` (a
line with fewer separators is all key). Keys sort by their bytes; the reducer command gets
`key SEP value` lines grouped by key, and its lines are cut by the reduce-output properties and
written as `key<mapreduce.output.textoutputformat.separator>value`, always with the separator (an
empty value leaves the line ending in a tab, as Hadoop writes it). No `-reducer`: the sorted map
output (IdentityReducer). `-reducer NONE` or `-numReduceTasks 0`: map-only, one part per map.
Commands run with `sh -c` in a working directory holding the `-file`s, with `-cmdenv` variables
and the job's properties (dots as underscores) in their environment.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from . import context
from .commands import pipe_lines
from .errors import JobDefinitionError
from .inputs import Block, TextInput, iter_text_lines
from .job import JobSpec, Step
from .shuffle.partition import stable_partition

_PARTITIONERS = {"HashPartitioner": "hash", "KeyFieldBasedPartitioner": "keyfield", "TotalOrderPartitioner": "total"}
_INPUT_FORMATS = ("TextInputFormat", "KeyValueTextInputFormat")
IDENTITY = "org.apache.hadoop.mapred.lib.IdentityReducer"


@dataclass
class StreamingJob:
    inputs: list
    output: str
    mapper: str
    reducer: str | None  # None: identity
    map_only: bool
    combiner: str | None
    reducers: int
    partitioner: str
    key_value_input: bool
    conf: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # name -> bytes, in every task's working directory
    env: dict = field(default_factory=dict)

    def get(self, name: str, default: str) -> str:
        return self.conf.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        return self.conf.get(name, str(default)).strip().lower() == "true"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrengine streaming", add_help=True, allow_abbrev=False,
                                description="Run a Hadoop Streaming job: any programs as mapper and reducer.")
    p.add_argument("-input", action="append", required=True)
    p.add_argument("-output", required=True)
    p.add_argument("-mapper", required=True)
    p.add_argument("-reducer")
    p.add_argument("-combiner")
    p.add_argument("-numReduceTasks", type=int)
    p.add_argument("-partitioner")
    p.add_argument("-inputformat", default="TextInputFormat")
    p.add_argument("-outputformat")
    p.add_argument("-D", action="append", default=[], metavar="K=V")
    p.add_argument("-jobconf", action="append", default=[], metavar="K=V")
    p.add_argument("-file", action="append", default=[])
    p.add_argument("-files", action="append", default=[])
    p.add_argument("-cmdenv", action="append", default=[], metavar="K=V")
    p.add_argument("-overwrite", action="store_true", help="replace an output directory that holds files (mrengine's)")
    return p


def parse(argv: list[str]) -> StreamingJob:
    """A streaming job from Hadoop's command line; a bad one is a JobDefinitionError naming the flag."""
    args, rest = _parser().parse_known_args(argv)
    if rest:
        raise JobDefinitionError(f"mrengine streaming does not know {' '.join(rest)}")
    conf = dict(_pair(kv, "-D") for kv in args.D + args.jobconf)
    fmt = args.inputformat.rsplit(".", 1)[-1]
    if fmt not in _INPUT_FORMATS:
        raise JobDefinitionError(f"-inputformat {args.inputformat}: mrengine streaming reads {' and '.join(_INPUT_FORMATS)}, "
                                 f"not other Java input formats")
    if args.outputformat and args.outputformat.rsplit(".", 1)[-1] != "TextOutputFormat":
        raise JobDefinitionError(f"-outputformat {args.outputformat}: mrengine streaming writes TextOutputFormat only")
    partitioner = _PARTITIONERS.get((args.partitioner or "HashPartitioner").rsplit(".", 1)[-1])
    if partitioner is None:
        raise JobDefinitionError(f"-partitioner {args.partitioner}: mrengine streaming runs no Java classes; it has "
                                 f"{', '.join(_PARTITIONERS)}")
    reducers = args.numReduceTasks if args.numReduceTasks is not None else int(conf.get("mapreduce.job.reduces", "1"))
    map_only = reducers == 0 or args.reducer == "NONE"
    files = {}
    for path in args.file + [p for group in args.files for p in group.split(",") if p]:
        try:
            with open(path, "rb") as f:
                files[os.path.basename(path)] = f.read()
        except OSError as exc:
            raise JobDefinitionError(f"-file {path}: {exc.strerror}") from None
    reducer = None if args.reducer in (None, "NONE", IDENTITY) else args.reducer
    return StreamingJob(args.input, args.output, args.mapper, reducer, map_only, args.combiner, max(reducers, 0),
                        partitioner, fmt == "KeyValueTextInputFormat", conf, files,
                        dict(_pair(kv, "-cmdenv") for kv in args.cmdenv))


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise JobDefinitionError(f"{flag} {text!r} must be NAME=VALUE")
    return name, value


def job_spec(job: StreamingJob) -> JobSpec:
    """The mrengine job that runs `job`: one step of its map, shuffle and reduce tasks."""
    sep = job.get("map.output.key.field.separator", job.get("mapreduce.map.output.key.field.separator", "\t"))
    partition = None
    if job.partitioner == "keyfield":
        fields = int(job.get("num.key.fields.for.partition", job.get("mapreduce.partition.keypartitioner.options", "1")
                             .replace("-k", "").split(",")[0] or 1))
        partition = _KeyFieldPartitioner(fields, sep.encode())
    step = Step(map_split=_StreamMap(job), reduce_partition=None if job.map_only else _StreamReduce(job),
                num_reducers=0 if job.map_only else job.reducers, partitioner=partition,
                total_order=job.partitioner == "total" and not job.map_only)
    fmt = _OffsetTextInput() if not job.key_value_input and not job.flag("stream.map.input.ignoreKey", True) else "text"
    return JobSpec(path="streaming", source="", steps=[step], input_format=fmt)


class _KeyFieldPartitioner:
    """KeyFieldBasedPartitioner: the first `fields` fields of the key (cut at `sep`) choose the partition."""

    def __init__(self, fields: int, sep: bytes):
        self.fields, self.sep = fields, sep

    def __call__(self, key: bytes, n: int) -> int:
        return stable_partition(self.sep.join(key.split(self.sep, self.fields)[:self.fields]), n)


class _OffsetTextInput(TextInput):
    """TextInputFormat with its key: each record is `offset<TAB>line`, the line's byte offset in its file."""

    name = "text-offsets"

    def read(self, split, storage_options):
        for offset, chunk, lines in iter_text_lines(split, storage_options):
            starts = [offset] + [offset + m.end() for m in re.finditer(b"\n", chunk)]
            yield Block([split.url] * len(lines), [f"{s}\t{line}" for s, line in zip(starts, lines)], lambda i: f"{split.url}")


def cut(line: bytes, sep: bytes, fields: int) -> tuple[bytes, bytes]:
    """Key (the first `fields` fields) and value of a line; a line with fewer separators is all key.

    >>> cut(b"a.b.c", b".", 2), cut(b"abc", b"\\t", 1)
    ((b'a.b', b'c'), (b'abc', b''))
    """
    pos = -len(sep)
    for _ in range(fields):
        pos = line.find(sep, pos + len(sep))
        if pos < 0:
            return line, b""
    return line[:pos], line[pos + len(sep):]


class _Task:
    def __init__(self, job: StreamingJob):
        self.job = job

    @contextmanager
    def workdir(self) -> Iterator[tuple[str, dict]]:
        work = tempfile.mkdtemp(prefix="streaming-task-")
        try:
            for name, data in self.job.files.items():
                path = os.path.join(work, name)
                with open(path, "wb") as f:
                    f.write(data)
                os.chmod(path, 0o755)
            env = {**os.environ, **{k.replace(".", "_"): v for k, v in self.job.conf.items()}, **self.job.env}
            env["PATH"] = work + os.pathsep + env.get("PATH", "")
            yield work, env
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def pipe(self, command: str, lines: Iterable[bytes], work: str, env: dict) -> Iterator[bytes]:
        return pipe_lines(command, lines, env=env, cwd=work,
                          fail_on_exit_status=self.job.flag("stream.non.zero.exit.is.failure", True))

    def output(self, pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple]:
        sep = self.job.get("mapreduce.output.textoutputformat.separator", "\t").encode()
        return ((None, (k + sep + v).decode("utf-8")) for k, v in pairs)


class _StreamMap(_Task):
    def __call__(self, records: Iterable[str]) -> Iterator[tuple]:
        job = self.job
        split = context.ctx.split
        with self.workdir() as (work, env):
            env.update(mapreduce_map_input_file=split.url, map_input_file=split.url,
                       mapreduce_map_input_start=str(split.start))
            out = self.pipe(job.mapper, self._stdin(records), work, env)
            sep = job.get("stream.map.output.field.separator", "\t").encode()
            fields = int(job.get("stream.num.map.output.key.fields", "1"))
            if job.combiner and not job.map_only:
                ordered = sorted(out, key=lambda line: cut(line, sep, fields)[0])
                context.ctx.counter("mrengine", "combine_input_records", len(ordered))
                out = _counted(self.pipe(job.combiner, ordered, work, env), "combine_output_records")
            pairs = (cut(line, sep, fields) for line in out)
            yield from self.output(pairs) if job.map_only else pairs

    def _stdin(self, records: Iterable[str]) -> Iterator[bytes]:
        job = self.job
        lines = (r.encode("utf-8") for r in records)
        if not job.key_value_input:
            return lines
        kv = job.get("mapreduce.input.keyvaluelinerecordreader.key.value.separator",
                     job.get("key.value.separator.in.input.line", "\t")).encode()
        sep = job.get("stream.map.input.field.separator", "\t").encode()
        if job.flag("stream.map.input.ignoreKey", False):
            return (cut(line, kv, 1)[1] for line in lines)
        return (b"%s%s%s" % (*_key_value(line, kv, sep),) for line in lines)


def _counted(lines: Iterable[bytes], counter: str) -> Iterator[bytes]:
    n = 0
    for n, line in enumerate(lines, 1):
        yield line
    context.ctx.counter("mrengine", counter, n)


def _key_value(line: bytes, kv: bytes, sep: bytes) -> tuple:
    key, value = cut(line, kv, 1)
    return key, sep, value


class _StreamReduce(_Task):
    def __call__(self, groups: Iterator[tuple]) -> Iterator[tuple]:
        job = self.job
        in_sep = job.get("stream.reduce.input.field.separator", "\t").encode()
        if job.reducer is None:
            yield from self.output((key, value) for key, values in groups for value in values)
            return
        if job.get("stream.reduce.input", "text") == "keyonlytext":
            lines = (key for key, values in groups for _ in values)
        else:
            lines = (key + in_sep + value for key, values in groups for value in values)
        with self.workdir() as (work, env):
            sep = job.get("stream.reduce.output.field.separator", "\t").encode()
            fields = int(job.get("stream.num.reduce.output.key.fields", "1"))
            out = self.pipe(job.reducer, lines, work, env)
            if job.get("stream.reduce.output", "text") == "keyonlytext":
                yield from ((None, line.decode("utf-8")) for line in out)  # the key alone, no separator
            else:
                yield from self.output(cut(line, sep, fields) for line in out)
