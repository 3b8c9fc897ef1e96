"""Word count whose map task over the file named by `-p hold=NAME` waits, before its first record,
until the file `-p release=PATH` exists (at most 120 s), so a test can act between the other map
tasks and the reduce."""

import os
import time

from mrengine import ctx

WAIT_SECONDS = 120


def mapper(path, line):
    if path.endswith(ctx.params["hold"]):
        deadline = time.monotonic() + WAIT_SECONDS
        while not os.path.exists(ctx.params["release"]):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released this map task")
            time.sleep(0.02)
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
