"""Word count whose tasks fail on their first attempt, after counting and writing part of their output.

The map task of split 1 fails at its 100th line, and the first reduce task to reach the key "s" fails
there (thousands of lines into its output file). Each failure happens once per run: it leaves a mark
in the directory `-p marks=DIR`. Retried attempts must not double the counters or leave files behind.
"""

import os

from mrengine import ctx


def _first_time(name):
    try:
        os.close(os.open(os.path.join(ctx.params["marks"], name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def mapper(path, line):
    ctx.counter("flaky", "map lines")
    if ctx.split.index == 1 and ctx.counters["flaky", "map lines"] == 100 and _first_time("map"):
        raise RuntimeError("a map task's first attempt fails")
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    ctx.counter("flaky", "reduce keys")
    if word >= "s" and _first_time("reduce"):
        raise RuntimeError("a reduce task's first attempt fails")
    yield word, sum(counts)


def combiner(word, counts):
    yield word, sum(counts)
