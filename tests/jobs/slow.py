"""A deliberately slow word count (each line takes `-p delay=SECONDS`, default 0.1)."""

import time

from mrengine import ctx


def mapper(path, line):
    time.sleep(float(ctx.params.get("delay", 0.1)))
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)
