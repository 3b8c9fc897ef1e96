"""Word count whose map tasks take `-p map_seconds=S` each and leave a mark in `-p marks=DIR` as they
start, so a test can act while a job is running."""

import os
import time

from mrengine import ctx


def mapper_init():
    marks = ctx.params.get("marks")
    if marks:
        open(os.path.join(marks, f"map-{ctx.split.index}-{os.getpid()}-{time.monotonic_ns()}"), "w").close()
    time.sleep(ctx.params.get("map_seconds", 0))
    return ()


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
