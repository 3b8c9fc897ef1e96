"""Word count whose partitioner sends words by their first letter: a-m to part 0, the rest to part 1."""


def mapper(path, line):
    for word in line.split():
        yield word.lower(), 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer


def partitioner(word, n):
    return 0 if word[:1] <= "m" else 1 % n
