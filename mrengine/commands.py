"""Running a task's shell command over lines, as Hadoop Streaming runs a mapper or reducer program.

Lines go to the command's stdin (a thread writes them, so a command that writes before it has read
everything never deadlocks), its stdout lines come back as they are written. On stderr,
`reporter:counter:GROUP,NAME,N` adds to the task's counters and `reporter:status:MESSAGE` sets its
status, as Hadoop's PipeMapRed reads them; the rest is kept (its tail) for the error. A command that
exits with a non-zero status fails the attempt, naming the command, its status and that tail —
unless `fail_on_exit_status` is False (Hadoop's `stream.non.zero.exit.is.failure=false`).
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from typing import Iterable, Iterator

from . import context
from .errors import MrEngineError

STDERR_TAIL_LINES = 20


class CommandFailed(MrEngineError):
    """A task's command exited with a non-zero status."""


def pipe_lines(command: str, lines: Iterable[bytes], env: dict | None = None, cwd: str | None = None,
               fail_on_exit_status: bool = True) -> Iterator[bytes]:
    """The command's stdout lines (without their newline) for `lines` (without theirs) on its stdin."""
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
    reports: list = []
    writer = threading.Thread(target=_feed, args=(proc.stdin, lines, reports), daemon=True)
    reader = threading.Thread(target=_read_stderr, args=(proc.stderr, tail, reports), daemon=True)
    writer.start()
    reader.start()
    try:
        for line in proc.stdout:
            yield line[:-1] if line.endswith(b"\n") else line
    finally:
        proc.stdout.close()
        writer.join()
        reader.join()
        status = proc.wait()
    _count(reports)
    if reports and isinstance(reports[-1], BaseException):
        raise reports[-1]
    if status != 0 and fail_on_exit_status:
        stderr = "\n".join(line.decode("utf-8", "replace") for line in tail)
        raise CommandFailed(f"command {command!r} exited with status {status}"
                            + (f"; the end of its stderr:\n{stderr}" if stderr else " and wrote nothing on stderr"))


def _feed(stdin, lines: Iterable[bytes], reports: list) -> None:
    try:
        for line in lines:
            stdin.write(line + b"\n")
    except BrokenPipeError:
        pass  # the command stopped reading (head, grep -m): what it wrote still counts
    except BaseException as exc:  # an error in whatever produces the lines: the task's error
        reports.append(exc)
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


def _read_stderr(stderr, tail: collections.deque, reports: list) -> None:
    for raw in stderr:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if line.startswith("reporter:counter:"):
            group, _, rest = line[len("reporter:counter:"):].partition(",")
            name, _, amount = rest.rpartition(",")
            if name and amount.strip().lstrip("-").isdigit():
                reports.insert(0, (group, name, int(amount)))
                continue
        if line.startswith("reporter:status:"):
            print(line, file=sys.stderr)
            continue
        tail.append(raw.rstrip(b"\r\n"))


def _count(reports: list) -> None:
    for report in reports:
        if isinstance(report, tuple):
            context.ctx.counter(*report)
