"""Counts the words of at least -p min_length letters, each key prefixed with -p tag; counts the others."""

from mrengine import ctx


def mapper(path, line):
    for word in line.split():
        if len(word) < ctx.params["min_length"]:
            ctx.counter("words", "too short")
            continue
        yield ctx.params["tag"] + word, 1


def reducer(word, counts):
    yield word, sum(counts)
