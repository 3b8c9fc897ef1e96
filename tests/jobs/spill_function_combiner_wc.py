"""Word count whose combiner is a plain function (not a declared fold): the map side keeps each word's
1s in a list and combines them before each spill and while merging spills."""


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
