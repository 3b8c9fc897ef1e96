"""Word count with hooks that let the cluster tests hold, fail or find a chosen task attempt.

With no parameters it is jobs/wordcount.py that also counts lines and words in user counters. The
hooks talk to the test through marker files in the directory given as `-p control=DIR`; every wait is
bounded, so a forgotten marker fails the test rather than hanging it.

- hold_map=NAME: a map attempt reading a file whose name ends with NAME writes DIR/held-map.<pid>,
  holding the pid of its worker, and waits for DIR/release.
- hold_reduce=1: every reduce attempt writes DIR/held-reduce.<pid>, holding the pid of its worker, and
  waits for DIR/release before its first output.
- fail_reduce_once=1: the first reduce attempt to get past hold_reduce (it claims DIR/reduce-failed)
  raises RuntimeError.
- stall_reduce=N: the first reduce attempt to reach its N-th key (it claims DIR/stalled) writes
  DIR/stalled.pid, holding its own pid, and waits for DIR/release (which the test may never make).
- fail_word=WORD: the mapper raises ValueError on every line holding WORD, in every attempt.
- fail_once=NAME: the first map attempt reading a file whose name ends with NAME (it claims
  DIR/failed-once) raises RuntimeError after counting 100 lines.
"""

import os
import time

from mrengine import ctx

WAIT_SECONDS = 120


def _path(name):
    return os.path.join(ctx.params["control"], name)


def _claim(name):
    try:
        os.close(os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _write(name, text):
    tmp = _path(name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, _path(name))


def _wait_for_release():
    deadline = time.monotonic() + WAIT_SECONDS
    while not os.path.exists(_path("release")):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released this attempt")
        time.sleep(0.02)


def mapper(path, line):
    params = ctx.params
    if "hold_map" in params and path.endswith(params["hold_map"]) and not os.path.exists(_path("release")):
        _write(f"held-map.{os.getpid()}", str(os.getppid()))
        _wait_for_release()
    words = line.split()
    ctx.counter("wc", "lines")
    ctx.counter("wc", "words", len(words))
    if "fail_word" in params and params["fail_word"] in words:
        raise ValueError(f"refusing to count {params['fail_word']!r}")
    if "fail_once" in params and path.endswith(params["fail_once"]) and ctx.counters["wc", "lines"] >= 100:
        if _claim("failed-once"):
            raise RuntimeError("the first attempt fails on purpose")
    for word in words:
        yield word, 1


def combiner(word, counts):
    yield word, sum(counts)


_keys = {"params": None, "n": 0}  # keys seen by the reduce attempt running in this process


def reducer(word, counts):
    params = ctx.params
    if "hold_reduce" in params and not os.path.exists(_path("release")):
        _write(f"held-reduce.{os.getpid()}", str(os.getppid()))
        _wait_for_release()
    if "fail_reduce_once" in params and _claim("reduce-failed"):
        raise RuntimeError("the first reduce attempt fails on purpose")
    if "stall_reduce" in params:
        if _keys["params"] is not params:  # a new attempt (each has its own params dict)
            _keys["params"], _keys["n"] = params, 0
        _keys["n"] += 1
        if _keys["n"] == int(params["stall_reduce"]) and _claim("stalled"):
            _write("stalled.pid", str(os.getpid()))
            _wait_for_release()
    yield word, sum(counts)
