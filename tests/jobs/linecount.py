"""Counts each distinct line: proves every line is read exactly once, byte for byte."""

output_format = "jsonlines"


def mapper(path, line):
    yield line, 1


def reducer(line, counts):
    yield line, sum(counts)


combiner = reducer
