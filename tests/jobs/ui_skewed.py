"""A job for the UI tests: one heavy key (most records go to one reducer), one straggling map task
(the split that starts at byte 0 of the file named by the `slow` parameter sleeps `sleep` seconds, or
until the file named by `release` exists), and output to see in the task logs."""

import logging
import os
import time

from mrengine import ctx

num_reducers = 4


def straggle(seconds, release):
    """Sleep `seconds`, or less if the test creates `release` sooner: it lets go once it has seen the task run."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def mapper(path, line):
    if ctx.params.get("slow") and os.path.basename(path) == ctx.params["slow"] and ctx.split.start == 0 and \
            line.startswith("first"):
        print(f"straggling on purpose in {os.path.basename(path)}")
        straggle(float(ctx.params.get("sleep", 4)), ctx.params.get("release"))
    if line.startswith("first"):
        logging.getLogger("ui_skewed").info("mapping %s", os.path.basename(path))
    ctx.counter("ui", "lines", 1)
    for word in line.split():
        yield word, line if word == "hot" else 1  # the hot key's values are big too: its partition is heaviest in bytes


def reducer(word, values):
    yield word, sum(1 if isinstance(v, str) else v for v in values)
