"""The ten most frequent words: a word count, then the single-reducer idiom `yield None, (count, word)`."""

from mrengine import Step


def count_words(path, line):
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


def to_one_key(word, count):
    yield None, (count, word)


def top_ten(_, pairs):
    for count, word in sorted(pairs, key=lambda p: (-p[0], p[1]))[:10]:
        yield word, count


steps = [
    Step(mapper=count_words, combiner=total, reducer=total, num_reducers=3),
    Step(mapper=to_one_key, reducer=top_ten, num_reducers=1),
]
