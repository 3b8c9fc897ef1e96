"""Keys of two types: each line, and its length."""


def mapper(path, line):
    yield line, 1
    yield len(line), 1


def reducer(key, values):
    yield key, sum(values)
