"""What an attempt printed: its stdout, stderr and log records, kept in a slot process, bounded per attempt.

The slot runs each attempt inside `captured(level)`; the text (the last LIMIT characters, with a note
of how much was dropped) travels up with the attempt's report to the master, which shows it in the
UI, keeps it in the job's history record and quotes its end in a failure message. Output written to
the file descriptors directly (os.write, C extensions) is not caught: it goes to the worker's log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys

LIMIT = 64 * 1024  # characters kept per attempt: the end, where failures are
DEFAULT_LEVEL = "INFO"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class TailBuffer(io.TextIOBase):
    """A text stream that keeps only its last `limit` characters."""

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._chunks: list[str] = []
        self._size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._chunks.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit:  # trim now and then, not on every write
            self._trim()
        return len(text)

    def _trim(self) -> None:
        joined = "".join(self._chunks)
        keep = joined[-self.limit:]
        self.dropped += len(joined) - len(keep)
        self._chunks, self._size = [keep], len(keep)

    def text(self) -> str:
        self._trim()
        body = "".join(self._chunks)
        return f"[... {self.dropped} characters dropped ...]\n{body}" if self.dropped else body


@contextlib.contextmanager
def captured(level: str | None = None, limit: int = LIMIT):
    """Send stdout, stderr and log records of `level` and above to a TailBuffer while the block runs."""
    buffer = TailBuffer(limit)
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level, old_streams = root.level, (sys.stdout, sys.stderr)
    root.addHandler(handler)
    root.setLevel(level or DEFAULT_LEVEL)
    sys.stdout = sys.stderr = buffer
    try:
        yield buffer
    finally:
        sys.stdout, sys.stderr = old_streams
        root.removeHandler(handler)
        root.setLevel(old_level)
