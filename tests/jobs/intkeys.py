"""Word lengths as int keys: part files must be in numeric order (9 before 10)."""


def mapper(path, line):
    for word in line.split():
        yield len(word), 1


def reducer(length, counts):
    yield length, sum(counts)


combiner = reducer
