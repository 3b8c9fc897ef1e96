"""jobs/sgd.py with gates for the failure tests in tests/test_iterative.py.

It runs sgd.py's own code, compiled into this module (so its functions travel with this job), and
stops where the test says:

-p gate=DIR -p pause_after=K: after round K the driver writes DIR/between and waits for DIR/go.
-p gate=DIR -p hold_round=K: in round K, the map of split 0 writes DIR/mid-<its pid> and waits for
    DIR/go; an attempt that starts once DIR/go exists does not wait.
Waits end after 120 s at most.
"""

import os
import time
from pathlib import Path

from mrengine import ctx

_SGD = Path(__file__).resolve().parents[2] / "jobs" / "sgd.py"
exec(compile(_SGD.read_text(), str(_SGD), "exec"), globals())

_sgd_main, _sgd_gradient = globals()["main"], globals()["gradient"]


def wait_for_file(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


def gradient(blocks):  # replaces sgd.py's, which its main looks up by name
    gate, model = ctx.params.get("gate"), ctx.broadcast
    if gate and model.get("round") == ctx.params.get("hold_round") and ctx.split.index == 0:
        go = os.path.join(gate, "go")
        if not os.path.exists(go):
            Path(gate, f"mid-{os.getpid()}").touch()
            wait_for_file(go)
    return _sgd_gradient(blocks)


def main(ctx):
    map_reduce = ctx.map_reduce

    def gated(inputs, **kw):
        if isinstance(kw.get("broadcast"), dict):
            kw["broadcast"] = {**kw["broadcast"], "round": ctx.rounds + 1}
        result = map_reduce(inputs, **kw)
        if ctx.rounds == ctx.params.get("pause_after"):
            Path(ctx.params["gate"], "between").touch()
            wait_for_file(os.path.join(ctx.params["gate"], "go"))
        return result

    ctx.map_reduce = gated
    _sgd_main(ctx)
