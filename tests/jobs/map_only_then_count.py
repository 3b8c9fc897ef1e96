"""A map-only step feeding a reduce step: every word upper-cased (map-only), then counted."""

from mrengine import Step


def shout(path, line):
    for word in line.split():
        yield word.upper(), 1


def count(word, ones):
    yield word, sum(ones)


steps = [
    Step(mapper=shout, num_reducers=0),
    Step(mapper=lambda word, one: [(word, one)], reducer=count, num_reducers=2),
]
