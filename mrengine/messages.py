"""The contract between driver, master, workers and runners: every message and spec as a typed value.

Specs say what runs: a `StepSpec` (one step of a job file, or one `main(ctx)` round, as a runner
runs it) and a `TaskSpec` (one attempt of one of its tasks). Messages are what travels over TCP,
each a dataclass with its frame `type`. `to_wire` is the one place a value becomes wire data (a
msgpack-ready map, fields by name) and `from_wire` the one place a frame becomes a value again: the
frame's `type` names the class, and nested values are rebuilt from the field annotations. Fields a
frame lacks take their defaults, so a new field with a default is added here, once.

    >>> frame = to_wire(Goodbye(worker_id="w1", master="abc"))
    >>> frame == {"type": "goodbye", "worker_id": "w1", "master": "abc"}
    True
    >>> from_wire(frame)
    Goodbye(worker_id='w1', master='abc')
    >>> from_wire({"type": "goodbye"})
    Traceback (most recent call last):
    ...
    mrengine.errors.ProtocolError: malformed 'goodbye' message: it lacks 'worker_id'
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Iterable, Iterator, NamedTuple

from .errors import ProtocolError
from .inputs import Split
from .shuffle.kept import bitmap, set_bits
from .shuffle.runs import Segment
from .tasklogs import DEFAULT_LEVEL as DEFAULT_LOG_LEVEL
from .tasks import DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_TIMEOUT, MAP, attempt_id

MESSAGES: dict[str, type] = {}  # frame type -> message class


def message(type_name: str):
    """Register a dataclass as the message of frame type `type_name`."""

    def register(cls):
        cls.type = type_name
        MESSAGES[type_name] = cls
        return cls

    return register


# ---------------------------------------------------------------- the codec


def to_wire(value: Any) -> Any:
    """A message (or any spec) as plain msgpack-ready data; a message's map carries its frame `type`."""
    plain = _plain(value)
    kind = getattr(type(value), "type", None)
    return {"type": kind, **plain} if isinstance(kind, str) else plain


def from_wire(frame: dict) -> Any:
    """The message a decoded frame holds; an unknown type or a missing field is a ProtocolError."""
    cls = MESSAGES.get(frame.get("type"))
    if cls is None:
        raise ProtocolError(f"unknown message type {frame.get('type')!r}")
    return decode(cls, frame)


def decode(cls: type, data: Any) -> Any:
    """A `cls` (a dataclass of this module) from its wire form."""
    if not isinstance(data, dict):
        raise ProtocolError(f"malformed {_what(cls)!r} message: not a map")
    values = {}
    for name, build, required in _decoding_plan(cls):
        if name in data:
            value = data[name]
            if build is not None and value is not None:
                try:
                    value = build(value)
                except ProtocolError:
                    raise
                except (TypeError, ValueError, AttributeError) as exc:
                    raise ProtocolError(f"malformed {_what(cls)!r} message: field {name!r}: {exc}") from None
            values[name] = value
        elif required:
            raise ProtocolError(f"malformed {_what(cls)!r} message: it lacks {name!r}")
    return cls(**values)


def _what(cls: type) -> str:
    return getattr(cls, "type", cls.__name__)


# The codec runs for every heartbeat and its reply, so what it learns from a class's fields and
# annotations is worked out once per class (docs/PERFORMANCE.md, "The master at scale").
_ATOMS = frozenset({str, int, float, bool, bytes, type(None)})


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMS:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if cls is Split:
        return {k: _plain(v) for k, v in zip(cls._fields, value)}
    if isinstance(value, list):
        if _ATOMS.issuperset(map(type, value)):
            return value  # a column of atoms (`MapSources`) is checked at C speed and not copied
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names in order; None for any other type."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


@functools.cache
def _decoding_plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, builder or None for "as it is", required) for each field of a dataclass."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _builder(hints[f.name]),
                  f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                 for f in dataclasses.fields(cls))


@functools.cache
def _builder(hint: Any):
    """The function that rebuilds a (non-None) value of type `hint` from its wire form; None if the
    wire form is the value itself."""
    if hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _builder(options[0]) if len(options) == 1 else None
    if origin is list:
        (item,) = typing.get_args(hint)
        return functools.partial(_build_list, _builder(item))
    if origin is dict:
        _, item = typing.get_args(hint)
        return functools.partial(_build_dict, _builder(item))
    if hint is Split:
        return lambda data: hint(**data)
    if dataclasses.is_dataclass(hint):
        return functools.partial(decode, hint)
    return None


def _build_list(build, data: Any) -> list:
    if not isinstance(data, (list, tuple)):
        raise TypeError(f"expected a list, got {type(data).__name__}")
    if build is None:
        return list(data)
    return [d if d is None else build(d) for d in data]


def _build_dict(build, data: Any) -> dict:
    if build is None:
        return dict(data.items())
    return {k: d if d is None else build(d) for k, d in data.items()}


# ---------------------------------------------------------------- specs: what a runner runs


@dataclass
class SplitPlaces:
    """Splits, each by its file and byte range, and the worker whose map task read it, as columns: row i
    is bytes [starts[i], ends[i]) of `urls[files[i]]`, read on `workers[i]`. Each file is named once,
    so that a job's M splits take three ints and a worker id each, on the wire and in memory.

        >>> places = SplitPlaces.of([(("a.txt", 0, 10), "w1"), (("a.txt", 10, 20), "w2")])
        >>> places.urls, places.files, dict(places.items())[("a.txt", 10, 20)]
        (['a.txt'], [0, 0], 'w2')
    """

    urls: list[str] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not len(self.files) == len(self.starts) == len(self.ends) == len(self.workers):
            raise ValueError("its columns differ in length")
        if self.files and not 0 <= min(self.files) <= max(self.files) < len(self.urls):
            raise ValueError("a row names a file it does not list")

    @classmethod
    def of(cls, places: Iterable[tuple[tuple[str, int, int], str]]) -> SplitPlaces:
        """From ((url, start, end), worker) pairs."""
        index: dict[str, int] = {}
        files, starts, ends, workers = [], [], [], []
        for (url, start, end), worker in places:
            files.append(index.setdefault(url, len(index)))
            starts.append(start)
            ends.append(end)
            workers.append(worker)
        return cls(list(index), files, starts, ends, workers)

    def items(self) -> Iterator[tuple[tuple[str, int, int], str]]:
        """((url, start, end), worker) for each split."""
        urls = self.urls
        for file, start, end, worker in zip(self.files, self.starts, self.ends, self.workers):
            yield (urls[file], start, end), worker


@dataclass
class StepSpec:
    """One step of a job file, or one `main(ctx)` round, as a runner runs it: every runner gets the same
    spec for the same job and options, so every runner writes the same bytes (created by
    `steps.step_spec`, read by the runners' `run_step` and `steps.plan`)."""

    job_bytes: bytes  # the JobSpec pickled by value
    job_name: str
    step: int
    inputs: list[str]
    input_format: str | None  # None: the job file's own (which may be a reader function, inside job_bytes)
    splittable: bool
    output: str
    output_format: str
    num_reducers: int
    split_size: int
    params: dict
    storage_options: dict
    sort_buffer_bytes: int
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    prefer: SplitPlaces = field(default_factory=SplitPlaces)  # splits that should run where they ran last round
    log_level: str = DEFAULT_LOG_LEVEL  # of the log records each attempt's log keeps (`--log-level`)
    # Who ran what, for the job's report and history only: no runner depends on them.
    user: str = ""
    job_file: str = ""
    overwrite: bool = False  # the output's earlier result goes before the first part is committed
    task_timeout: float = DEFAULT_TASK_TIMEOUT  # seconds an attempt may make no progress
    task_memory_mb: int | None = None  # None: the worker's default (limits.default_task_memory_mb)
    session: str = ""  # the main(ctx) session whose round this is; its rounds may share a slot process
    skip_bad_records: int = 0  # bad records the step may skip (`--skip-bad-records`); 0: none, a record error fails
    job_output: str = ""  # the job's output directory, where every step's skipped records go ("": this step's)


class MapSource(NamedTuple):
    """Where a reduce attempt fetches one map task's segment for its partition (a row of `MapSources`)."""

    map_index: int
    address: str  # the shuffle server of the worker holding it
    attempt_id: str  # the map attempt that wrote it


@dataclass
class MapSources:
    """Where a reduce attempt fetches its partition of every map output, as columns (row i: one map task)
    with each shuffle server listed once: a reduce of M maps gets 4 lists of M atoms, not M objects, and
    the master shares them between its reduces (docs/PERFORMANCE.md, "The master at scale"). `fetch`
    names the rows whose segment for this partition holds records, in map order; the others are not
    fetched. A segment's bytes and records come with it from the shuffle server.

        >>> sources = MapSources(["10.0.0.5:7001"], [0, 1], [0, 0], ["m00000.0", "m00001.2"], fetch=[1])
        >>> sources.attempt_of(0), list(sources)
        ('m00000.0', [MapSource(map_index=1, address='10.0.0.5:7001', attempt_id='m00001.2')])
    """

    addresses: list[str] = field(default_factory=list)  # the shuffle servers (HOST:PORT) holding the outputs
    maps: list[int] = field(default_factory=list)  # the map task of each row
    hosts: list[int] = field(default_factory=list)  # its output's shuffle server, as an index into `addresses`
    attempts: list[str] = field(default_factory=list)  # the map attempt that wrote it
    fetch: list[int] = field(default_factory=list)  # the rows to fetch, ascending

    def __post_init__(self):
        _check_columns(self)
        if self.fetch and not 0 <= min(self.fetch) <= max(self.fetch) < len(self.maps):
            raise ValueError("it fetches a row it does not have")

    def __len__(self) -> int:
        return len(self.fetch)

    def __iter__(self) -> Iterator[MapSource]:
        addresses, maps, hosts, attempts = self.addresses, self.maps, self.hosts, self.attempts
        for row in self.fetch:
            yield MapSource(maps[row], addresses[hosts[row]], attempts[row])

    def attempt_of(self, map_index: int) -> str:
        """The map attempt whose output this reduce fetches from map task `map_index`."""
        return self.attempts[self.maps.index(map_index)]


def _check_columns(sources: MapSources) -> None:
    rows = len(sources.maps)
    if not len(sources.hosts) == len(sources.attempts) == rows:
        raise ValueError("its columns differ in length")
    _check_hosts(sources)


def _check_hosts(sources: MapSources | SharedSources) -> None:
    if sources.hosts and not 0 <= min(sources.hosts) <= max(sources.hosts) < len(sources.addresses):
        raise ValueError("a row names a shuffle server it does not list")


@dataclass
class SharedSources:
    """The columns of `MapSources` that every reduce of a job shares (all but `fetch`), as they travel to a
    worker: once per `generation`, not with every reduce (a reduce's spec names the generation, `SourcesRef`).
    The master makes a new generation when a map's winning attempt changes (its worker was lost, or a
    reducer could not fetch its output), and sends it to each worker a reduce of it goes to next.

    Row i is map task i: its output's shuffle server (an index into `addresses`) and the number of its
    winning attempt, from which the worker makes the attempt's id, so that M maps take two small ints each.

        >>> shared = SharedSources(2, ["10.0.0.5:7001"], [0, 0, 0], [0, 1, 0])
        >>> shared.for_reduce(FetchRows.of([1, 2], count=3)).fetch, shared.for_reduce(FetchRows(every=True)).attempts
        ([1, 2], ['m00000.0', 'm00001.1', 'm00002.0'])
    """

    generation: int
    addresses: list[str] = field(default_factory=list)
    hosts: list[int] = field(default_factory=list)
    attempt_numbers: list[int] = field(default_factory=list)

    def __post_init__(self):
        if len(self.hosts) != len(self.attempt_numbers):
            raise ValueError("its columns differ in length")
        _check_hosts(self)
        if self.attempt_numbers and min(self.attempt_numbers) < 0:
            raise ValueError("an attempt number is negative")

    def __len__(self) -> int:
        return len(self.hosts)

    def for_reduce(self, fetch: FetchRows) -> MapSources:
        """A reduce's full sources, fetching `fetch` (the columns are made once and shared, not copied)."""
        maps, attempts = self._columns
        return MapSources(self.addresses, maps, self.hosts, attempts, fetch.rows(len(self)))

    @functools.cached_property
    def _columns(self) -> tuple[list[int], list[str]]:
        return list(range(len(self))), [attempt_id(MAP, i, n) for i, n in enumerate(self.attempt_numbers)]


@dataclass
class FetchRows:
    """Which rows of its job's `SharedSources` a reduce fetches (those whose segment for its partition holds
    records): every row (`every`, the usual case: every map filled the partition, and nothing else travels),
    else the rows whose bit is set in `bitmap` (row i: byte i // 8, bit i % 8), M/8 bytes.

        >>> FetchRows.of([0, 1, 2], count=3), FetchRows.of([0, 9], count=10)
        (FetchRows(every=True, bitmap=b''), FetchRows(every=False, bitmap=b'\\x01\\x02'))
        >>> FetchRows.of([0, 9], count=10).rows(10), FetchRows(every=True).rows(3)
        ([0, 9], [0, 1, 2])
    """

    every: bool = False
    bitmap: bytes = b""

    @classmethod
    def of(cls, rows: list[int], count: int) -> FetchRows:
        """The rows `rows` (ascending, each below `count`) of `count`."""
        if len(rows) == count:
            return cls(every=True)
        flags = bytearray(count)
        for row in rows:
            flags[row] = 1
        return cls(bitmap=bitmap(flags))

    def rows(self, count: int) -> list[int]:
        """The rows to fetch of `count`, ascending; a bitmap that is not one of `count` rows is a ValueError."""
        if self.every:
            return list(range(count))
        if len(self.bitmap) != (count + 7) // 8 or int.from_bytes(self.bitmap, "little") >> count:
            raise ValueError(f"its bitmap is not one of {count} rows")
        return set_bits(self.bitmap, count)


@dataclass
class SourcesRef:
    """A reduce's map sources in its spec as it travels: generation `generation` of its job's `SharedSources`
    (which its worker holds, or gets in the same reply) and the rows it fetches. The worker makes the full
    `MapSources` from them before the attempt starts, and never from another generation."""

    generation: int
    fetch: FetchRows = field(default_factory=FetchRows)


@dataclass
class TaskSpec:
    """One attempt of a map or reduce task (created by the master's scheduler, run by a slot process
    through `executor.run_map` / `run_reduce`)."""

    job_id: str
    attempt_id: str
    kind: str  # tasks.MAP or tasks.REDUCE
    index: int
    step: int
    params: dict
    storage_options: dict
    num_partitions: int
    # a map's
    split: Split | None = None
    input_format: str | None = None
    sort_buffer_bytes: int = 0
    # a reduce's (`output` and `output_format` also a map-only step's map's, which writes a part file)
    sources_ref: SourcesRef | None = None  # as its sources travel; the worker makes `sources` from it
    sources: MapSources = field(default_factory=MapSources)  # as the attempt runs
    output: str = ""
    output_format: str = ""
    log_level: str = DEFAULT_LOG_LEVEL  # of the log records the attempt's log keeps
    # limits and isolation, as the step's spec says
    task_timeout: float = DEFAULT_TASK_TIMEOUT
    task_memory_mb: int | None = None
    session: str = ""
    skip: list[int] = field(default_factory=list)  # `BadRecord.number`s to pass over: each failed two attempts

    @property
    def scope(self) -> str:
        """What a slot process that ran this attempt may be reused for: its main(ctx) session, else its job."""
        return self.session or self.job_id

    @property
    def ref(self) -> "AttemptRef":
        return AttemptRef(self.job_id, self.attempt_id)

    @property
    def writes_part(self) -> bool:
        """Whether the attempt writes a part file under the output (which a cancelled one leaves to remove)."""
        return bool(self.output)


# ---------------------------------------------------------------- results


@dataclass
class BadRecord:
    """The record a job's function raised on, which `--skip-bad-records` may skip. `number` names it
    among its task's input as every attempt reads it, in the same order: a map's record in its split,
    a reduce's key group in its partition."""

    number: int
    where: str  # as the error says it: "the line at byte offset 812", "key 'x'"
    text: str = ""  # the record (a reduce's key), bounded
    offset: int = -1  # a map record's byte offset in its file, where its format knows it


@dataclass
class ErrorInfo:
    """A failed attempt's error as it travels to whoever decides on retries. `final`: another attempt
    would fail the same way (a `RecordError`), so none is made. `worker_fault`: the worker is to blame,
    not the task (its work dir is full), so the attempt is not counted and the worker gets no more of the job.
    `record`: the record the job's code raised on, when one is to blame."""

    message: str
    traceback: str = ""
    final: bool = False
    worker_fault: bool = False
    record: BadRecord | None = None


@dataclass(slots=True)
class MapOutput:
    """A map attempt's result: its output file's segments, one per reduce partition, side by side from the
    file's start, as columns of their bytes and records; its counters; and per partition its sampled
    heaviest keys (`shuffle.heavykeys`: [[key as shown, records, bytes], ...]). The master keeps of the
    segments a bit each (`shuffle.kept`), the worker that holds the file all of them.

        >>> output = MapOutput.of([Segment(0, 120, 4), Segment(120, 0, 0), Segment(120, 30, 1)], [])
        >>> output.lengths, output.records, output.segments()[2]
        ([120, 0, 30], [4, 0, 1], Segment(offset=120, length=30, records=1))
    """

    lengths: list[int]
    records: list[int]
    counters: list  # [group, name, value] triples
    heavy_keys: list = field(default_factory=list)

    def __post_init__(self):
        if len(self.lengths) != len(self.records):
            raise ValueError("its columns differ in length")

    @classmethod
    def of(cls, segments: list[Segment], counters: list, heavy_keys: list | None = None) -> "MapOutput":
        """The result of a map whose output file holds `segments`, which must lie side by side from its start."""
        starts = accumulate((s.length for s in segments), initial=0)
        if any(s.offset != start for s, start in zip(segments, starts)):
            raise ValueError("the segments do not lie side by side from the file's start")
        return cls([s.length for s in segments], [s.records for s in segments], counters, heavy_keys or [])

    def segments(self) -> list[Segment]:
        """Where each partition's segment lies in the output file."""
        return list(map(Segment._make, zip(accumulate(self.lengths, initial=0), self.lengths, self.records)))


@dataclass(slots=True)
class PartOutput:
    """A reduce attempt's result: its output file's bytes, records and CRC-32 (as `_SUCCESS` lists
    them), and its counters."""

    bytes: int
    records: int
    crc32: int
    counters: list

    def manifest_entry(self) -> dict:
        return {"bytes": self.bytes, "records": self.records, "crc32": self.crc32}


@dataclass
class FetchFailure:
    """A reduce attempt could not fetch map task `map_index`'s output, made by attempt `map_attempt`."""

    map_index: int
    map_attempt: str


@dataclass
class AttemptRef:
    job_id: str
    attempt_id: str


@dataclass
class AttemptReport:
    """A finished attempt, as the worker reports it: exactly one of `map_output`, `part`, `error`."""

    job_id: str
    attempt_id: str
    map_output: MapOutput | None = None
    part: PartOutput | None = None
    error: ErrorInfo | None = None
    fetch_failed: FetchFailure | None = None
    log: str = ""  # what the attempt printed and logged, its end (`tasklogs`)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def result(self) -> MapOutput | PartOutput | None:
        return self.map_output if self.map_output is not None else self.part


# ---------------------------------------------------------------- worker <-> master


@message("register")
@dataclass
class Register:
    host: str
    shuffle: str  # HOST:PORT of its shuffle server
    slots: int
    pid: int = 0
    previous: str = ""  # the registration before, if any
    master: str = ""  # the master instance that gave it


@message("registered")
@dataclass
class Registered:
    worker_id: str
    worker_timeout: float
    master: str


@message("heartbeat")
@dataclass
class Heartbeat:
    worker_id: str
    master: str
    free_slots: int
    running: list[AttemptRef] = field(default_factory=list)
    finished: list[AttemptReport] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # master jobs whose code the worker holds
    sources: dict[str, int] = field(default_factory=dict)  # master job -> the generation of its SharedSources held


HEARTBEAT_SECONDS = 0.5  # a busy worker's heartbeat interval, unless the master asks for a longer one


@message("work")
@dataclass
class Work:
    assign: list[TaskSpec] = field(default_factory=list)
    jobs: dict[str, bytes] = field(default_factory=dict)  # the code of assigned master jobs the worker lacks
    cancel: list[AttemptRef] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # master jobs that are over
    polled: bool = False  # the master waited for work to appear
    heartbeat_seconds: float = HEARTBEAT_SECONDS  # how long a busy worker may wait before its next heartbeat
    sources: dict[str, SharedSources] = field(default_factory=dict)  # of assigned reduces' jobs, if it lacks them


@message("reregister")
@dataclass
class Reregister:
    """The master does not know (or no longer trusts) the worker's registration."""


@message("goodbye")
@dataclass
class Goodbye:
    worker_id: str
    master: str


@message("ok")
@dataclass
class Ok:
    pass


# ---------------------------------------------------------------- driver <-> master


@message("submit")
@dataclass
class Submit:
    spec: StepSpec


@message("submitted")
@dataclass
class Submitted:
    job_id: str  # the master job running the step
    maps: int
    reduces: int


@dataclass
class TaskCounts:
    maps: int = 0
    maps_done: int = 0
    maps_running: int = 0
    reduces: int = 0
    reduces_done: int = 0
    reduces_running: int = 0
    attempts: int = 0
    attempts_failed: int = 0


@message("job_status_request")
@dataclass
class JobStatusRequest:
    job_id: str
    wait: float = 0.0  # seconds the master may hold the answer while the job runs: it answers when the job ends


@message("job_status")
@dataclass
class StepStatus:
    """Where a step stands (a master job natively, a Spark job, or in-process), as every runner's
    `run_step` returns it and the progress line prints it."""

    state: str  # running, succeeded, failed, cancelled
    counts: TaskCounts
    counters: list = field(default_factory=list)  # [group, name, value], summed over winning attempts
    elapsed: float = 0.0
    error: ErrorInfo | None = None
    manifest: dict | None = None  # what `_SUCCESS` says, once succeeded
    workers: int = 0
    map_workers: SplitPlaces = field(default_factory=SplitPlaces)  # where each split's map ran (native only)
    excluded: list[str] = field(default_factory=list)  # "worker: why" for each worker the job stopped using
    report: dict | None = None  # the step's job report, for runners without a master to keep it (Spark)


@message("kill")
@dataclass
class Kill:
    """`mrengine kill`: cancel a running master job (answered by `Ok`, or an error reply)."""

    job_id: str


@message("logs_request")
@dataclass
class LogsRequest:
    """`mrengine logs JOB [TASK] --master`: the output of a master job's finished attempts (of TASK alone)."""

    job_id: str
    task: str | None = None  # an attempt id (m00003.0) or a task (m00003)


@message("logs")
@dataclass
class Logs:
    attempts: list  # [attempt id, its output], in task order


@message("status_request")
@dataclass
class StatusRequest:
    tasks: bool = False  # the tasks of finished master jobs too


@dataclass
class AttemptRow:
    id: str
    worker: str
    state: str
    backup: bool
    seconds: float | None


@dataclass
class TaskRow:
    kind: str
    index: int
    state: str
    failures: int
    attempts: list[AttemptRow]


@dataclass
class WorkerRow:
    id: str
    host: str
    pid: int
    shuffle: str
    slots: int
    alive: bool
    running: list[AttemptRef]
    last_seen: float  # seconds ago


@dataclass
class JobRow:
    id: str
    name: str
    step: int
    state: str
    counts: TaskCounts
    elapsed: float
    error: str | None
    tasks: list[TaskRow] | None
    excluded: list[str] = field(default_factory=list)  # as in StepStatus


@message("status")
@dataclass
class ClusterStatus:
    """`mrengine status` and `mrengine jobs`: the master's workers and master jobs."""

    workers: list[WorkerRow]
    jobs: list[JobRow]


# ---------------------------------------------------------------- reducer <-> shuffle server


@message("fetch")
@dataclass
class Fetch:
    job_id: Any
    attempt_id: Any
    partition: Any  # checked by the shuffle server, which answers a bad one with an error


@message("segment")
@dataclass
class SegmentHeader:
    length: int  # the segment's bytes follow the frame
    records: int


# ---------------------------------------------------------------- worker <-> slot process (a pipe)


@dataclass
class SlotRequest:
    task: TaskSpec
    job_bytes: bytes | None = None  # None: the slot holds the job already


@dataclass
class SlotReply:
    report: AttemptReport
    map_file: str = ""  # a map attempt's output file, which stays on the worker
    held: list[str] = field(default_factory=list)  # master jobs the slot process holds unpickled


# ---------------------------------------------------------------- task <-> parameter server


@message("ps_join")
@dataclass
class PsJoin:
    """A task's first request on a connection: it is task `task` (its split's index)."""

    task: int


@message("ps_push")
@dataclass
class PsPush:
    """One step's additive update of the named parameters, from attempt `attempt` of the joined task."""

    step: int
    attempt: str
    deltas: dict[str, Any]


@message("ps_finish")
@dataclass
class PsFinish:
    pass


@message("ps_params")
@dataclass
class PsParams:
    """The reply to a join or a push: the joined task's next step and the parameters to compute it from."""

    step: int
    version: int
    waited: float  # seconds the staleness bound held the reply back
    params: dict[str, Any]


@message("ps_finished")
@dataclass
class PsFinished:
    step: int
