"""Raises while reducing the key 'Moses'."""


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    total = sum(counts)
    if word == "Moses":
        raise KeyError(word)
    yield word, total
