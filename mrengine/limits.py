"""Limits on one task attempt, kept by its worker: progress (`--task-timeout`) and memory (`--task-memory-mb`).

The slot process counts its own progress (`sample_progress`, a thread): the records and key groups
the executor has reached. The worker reads that number through shared memory, and from the kernel
the bytes the process has read and written (input, spills, fetched segments, output) and its
resident memory; it kills an attempt that made no progress for the job's task timeout, or uses more
memory than its limit. A slot's pid is measured with its children (a job may start processes of its
own). The worker reads /proc for the slot, as the slot's own reads would count as its progress.
"""

from __future__ import annotations

import errno
import threading
import time

import psutil

from . import executor

SAMPLE_SECONDS = 0.5
MIN_TASK_MEMORY_MB = 256


def default_task_memory_mb(slots: int) -> int:
    """Three quarters of the machine's memory shared among the worker's slots (at least 256 MiB)."""
    return max(MIN_TASK_MEMORY_MB, psutil.virtual_memory().total * 3 // 4 // max(slots, 1) // (1024 * 1024))


def _io_bytes(proc: psutil.Process) -> int:
    try:
        io = proc.io_counters()
        return getattr(io, "read_chars", io.read_bytes) + getattr(io, "write_chars", io.write_bytes)
    except (psutil.Error, AttributeError, NotImplementedError):
        return 0


def sample_progress(shared) -> None:
    """In a slot process: keep `shared.value` (a multiprocessing.RawValue) growing while an attempt moves."""
    def loop():
        while True:
            shared.value = executor.progress()
            time.sleep(SAMPLE_SECONDS)

    threading.Thread(target=loop, name="progress", daemon=True).start()


class Watch:
    """The worker's view of one running attempt: when it last made progress, and how much memory it holds."""

    def __init__(self, pid: int, shared, timeout: float, memory_mb: int):
        self.shared = shared
        self.timeout = timeout
        self.memory_mb = memory_mb
        try:
            self.proc = psutil.Process(pid)
        except psutil.Error:
            self.proc = None
        self.last_value = self._progress()
        self.last_change = time.monotonic()

    def _progress(self) -> int:
        return self.shared.value + (_io_bytes(self.proc) if self.proc is not None else 0)

    def breach(self) -> str | None:
        """Why the attempt must be killed now, or None."""
        now = time.monotonic()
        value = self._progress()
        if value != self.last_value:
            self.last_value, self.last_change = value, now
        elif now - self.last_change > self.timeout:
            return (f"made no progress (no record read or written) for {now - self.last_change:.0f}s, past the "
                    f"task timeout of {self.timeout:g}s (--task-timeout); killed")
        rss = self._rss_mb()
        if rss > self.memory_mb:
            return (f"used {rss:.0f} MiB of memory, past the task memory limit of {self.memory_mb} MiB "
                    f"(--task-memory-mb); killed")
        return None

    def _rss_mb(self) -> float:
        if self.proc is None:
            return 0.0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / (1024 * 1024)
        except psutil.Error:
            return 0.0


def died_message(exitcode: int | None) -> str:
    """What a slot process that ended without a reply tells about its end."""
    if exitcode is None:
        return "the task process died without a word"
    if exitcode < 0:
        import signal

        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"the task process was killed by {name}{hint}"
    return f"the job's code ended the task process with exit code {exitcode} (os._exit({exitcode}))"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it was raised from) is ENOSPC/EDQUOT: the disk is full, not the code wrong."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
