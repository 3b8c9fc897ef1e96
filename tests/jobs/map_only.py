"""Map-only: each line's words with their position, one part per map in the mapper's order."""

num_reducers = 0


def mapper(path, line):
    for i, word in enumerate(line.split()):
        yield word, i
