"""Word count whose parts, concatenated in order, are one sorted sequence of words."""

total_order = True
num_reducers = 4


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
