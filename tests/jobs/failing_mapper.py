"""Raises on the line holding the word 'Bethlehem'."""


def mapper(path, line):
    for word in line.split():
        if word.startswith("Bethlehem"):
            raise ValueError(f"refusing {word!r}")
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)
