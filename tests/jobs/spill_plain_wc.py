"""Word count without a combiner: every (word, 1) pair goes through the spills and the shuffle."""


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)
