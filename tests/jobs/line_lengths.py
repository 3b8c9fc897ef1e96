"""A main(ctx) job that counts on the driver, through its own ctx and through mrengine.ctx after a round,
and writes how many lines have each number of words to lengths.json."""

import json

import mrengine


def words_per_line(path, line):
    mrengine.ctx.counter("lines", "read")
    yield len(line.split()), 1


def add(key, values):
    yield key, sum(values)


def main(ctx):
    lengths = dict(ctx.map_reduce(ctx.inputs, mapper=words_per_line, reducer=add, combiner=add))
    mrengine.ctx.counter("driver", "rounds")  # mrengine.ctx is main's ctx again once the round is over
    ctx.counter("driver", "distinct lengths", len(lengths))
    with ctx.open("lengths.json") as f:
        json.dump(sorted(lengths.items()), f)
