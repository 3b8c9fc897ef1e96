"""Writes each -p/-P parameter as `name<TAB>["type", value]`, to show how the CLI typed it."""

from mrengine import ctx

num_reducers = 1


def mapper(path, line):
    for name, value in ctx.params.items():
        yield name, [type(value).__name__, value]


def reducer(name, seen):
    yield name, next(seen)  # every map task saw the same params
