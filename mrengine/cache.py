"""What a worker's slot process keeps between the attempts it runs.

Jobs: the last few unpickled job specs, by job id, so the tasks of one job unpickle it once per slot
(and the worker sends a job's code only to slots whose replies do not list it, `job_ids`);
with each, its broadcast value, decoded on first use. A round of a `main(ctx)` job is one job, so
its broadcast reaches every slot process once per round, however many tasks the slot runs.

Splits: the parsed blocks (numpy arrays) of the splits that the rounds of an iterative session read,
keyed by the session and the split, so rounds 2+ neither read nor parse their input again. It is
only a cache: bounded in bytes (the least recently used go first), emptied when the slot has been
idle for a while, and gone with the process; whoever reads a split afresh gets the same records.
Workers assume a session's input files do not change while it runs.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter, OrderedDict
from typing import Any, Callable, Iterator

import cloudpickle
import psutil

from .inputs import Block, InputFormat, Split
from .job import JobSpec

MAX_JOBS = 8
IDLE_SECONDS = 300.0  # a slot idle this long gives its cached splits back


def default_max_bytes() -> int:
    """MRENGINE_SPLIT_CACHE_MB, or a quarter of the machine's memory shared among its cores."""
    env = os.environ.get("MRENGINE_SPLIT_CACHE_MB")
    if env:
        return int(float(env) * 1024 * 1024)
    return psutil.virtual_memory().total // (4 * (os.cpu_count() or 1))


class _Job:
    __slots__ = ("spec", "broadcast", "decoded")

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.broadcast: Any = None
        self.decoded = False


class SlotCache:
    def __init__(self, max_bytes: int | None = None, on_load: Callable[[JobSpec], None] | None = None):
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.on_load = on_load
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._splits: OrderedDict[tuple, tuple[list[Block], int]] = OrderedDict()
        self.bytes = 0

    # ------------------------------------------------------------ jobs and broadcasts

    def job(self, job_id: str, job_bytes: bytes | None) -> JobSpec:
        """The job `job_id`, unpickled from `job_bytes` unless held already (then `job_bytes` may be None)."""
        entry = self._jobs.get(job_id)
        if entry is None:
            if job_bytes is None:
                raise RuntimeError(f"job {job_id} is not held here, and its code did not come with the task")
            entry = self._jobs[job_id] = _Job(cloudpickle.loads(job_bytes))
            if self.on_load is not None:
                self.on_load(entry.spec)
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        self._jobs.move_to_end(job_id)
        return entry.spec

    def job_ids(self) -> list[str]:
        return list(self._jobs)

    def broadcast(self, job_id: str, job: JobSpec, engine: Counter) -> Any:
        """The job's broadcast value, decoded once per slot (counted as `broadcast_loads`)."""
        if job.broadcast is None:
            return None
        entry = self._jobs.get(job_id)
        if entry is None:  # a job this cache did not load: nowhere to keep the value
            engine["broadcast_loads"] += 1
            return pickle.loads(job.broadcast)
        if not entry.decoded:
            entry.broadcast, entry.decoded = pickle.loads(job.broadcast), True
            engine["broadcast_loads"] += 1
        return entry.broadcast

    # ------------------------------------------------------------ splits

    def blocks(self, job: JobSpec, fmt: InputFormat, split: Split, storage_options: dict | None,
               engine: Counter) -> Iterator[Block]:
        """The split's blocks: from memory when this session read them before, else read (and kept)."""
        if job.session is None or not fmt.cacheable:
            return fmt.read(split, storage_options)
        key = (job.session, fmt.cache_key(), split.url, split.start, split.end)
        hit = self._splits.get(key)
        if hit is not None:
            self._splits.move_to_end(key)
            engine["split_cache_hits"] += 1
            return iter(hit[0])
        blocks = list(fmt.read(split, storage_options))
        engine["split_reads"] += 1
        size = sum(getattr(b.values, "nbytes", 0) for b in blocks)
        if size <= self.max_bytes:
            self._splits[key] = (blocks, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._splits.popitem(last=False)
                self.bytes -= dropped
        return iter(blocks)

    def drop_splits(self) -> None:
        self._splits.clear()
        self.bytes = 0
