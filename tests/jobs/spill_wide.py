"""A job whose map output is many times the sort buffer: about 200 bytes of Python objects per word of
input, every pair distinct (no combiner could shrink it). The reducer streams its values."""


def mapper(path, line):
    for i, word in enumerate(line.split()):
        yield f"{word}.{i % 40}", word * 6


def reducer(key, values):
    yield key, sum(len(v) for v in values)
