"""Counts lines, words and long words in user counters, in the mapper, the combiner and the reducer."""

from mrengine import ctx


def mapper(path, line):
    ctx.counter("lines", "all")
    if not line.strip():
        ctx.counter("lines", "blank")
    for word in line.split():
        if len(word) > 10:
            ctx.counter("words", "long")
        yield word, 1


def combiner(word, counts):
    ctx.counter("combiner", "calls")
    yield word, sum(counts)


def reducer(word, counts):
    total = sum(counts)
    ctx.counter("words", "distinct")
    ctx.counter("words", "total", total)
    yield word, total
