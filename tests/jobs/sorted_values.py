"""Secondary sort: a line's first word's later words arrive sorted; the reducer writes them in arrival order."""

sort_values = True
num_reducers = 3


def mapper(path, line):
    words = line.split()
    for word in words[1:]:
        yield words[0], word


def reducer(first, words):
    yield first, " ".join(words)
