"""What a job's functions can reach while they run: `from mrengine import ctx`.

`ctx.params` holds the `-p name=value` parameters, `ctx.counter(group, name, n)` counts,
`ctx.split` says which split a map task reads, and `ctx.broadcast` is the value the round's
`ctx.map_reduce(..., broadcast=...)` sent (iterative jobs). In `main(ctx)` the driver hands its own
context (`mrengine.iterative.DriverContext`), which runs the rounds; `mrengine.ctx` forwards to it
there too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class TaskContext:
    """The context of one task attempt. Counters travel with the attempt's result."""

    def __init__(self, params: dict, split: Any = None, broadcast: Any = None):
        self.params = dict(params)
        self.split = split
        self.broadcast = broadcast
        self.counters: dict[tuple[str, str], int] = Counter()

    def counter(self, group: str, name: str, n: int = 1) -> None:
        """Add `n` to the counter `group`/`name` (counted once per task, however often it is retried)."""
        self.counters[(str(group), str(name))] += int(n)


class _CurrentContext:
    """Forwards to the context of the task running in this process."""

    _current: TaskContext | None = None

    def __getattr__(self, name: str) -> Any:
        current = _CurrentContext._current
        if current is None:
            raise RuntimeError("mrengine.ctx is only available while a job's function runs")
        return getattr(current, name)


ctx = _CurrentContext()


def activate(context: TaskContext | None) -> None:
    _CurrentContext._current = context


def current() -> TaskContext | None:
    """The context `ctx` forwards to now (None outside a job's functions), to restore after running
    tasks in the process that runs `main(ctx)`."""
    return _CurrentContext._current
