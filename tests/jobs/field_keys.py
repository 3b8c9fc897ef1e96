"""Key fields: keys "first.second" partitioned on their first field only, counted."""

partition_fields = 1
field_separator = "."
num_reducers = 4


def mapper(path, line):
    words = line.split()
    for a, b in zip(words, words[1:]):
        yield f"{a}.{b}", 1


def reducer(key, counts):
    yield key, sum(counts)
