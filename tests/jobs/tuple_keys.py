"""Tuple keys and tuple values: (first letter, word length) -> (occurrences, longest word).

The values keep their type through the shuffle (a tuple stays a tuple) and the keys sort as Python
sorts tuples.
"""


def mapper(path, line):
    for word in line.split():
        yield (word[0].lower(), len(word)), (1, word)


def reducer(key, values):
    count, longest = 0, ""
    for n, word in values:
        count += n
        longest = max(longest, word)
    yield key, (count, longest)


num_reducers = 3
