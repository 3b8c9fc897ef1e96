"""Two chained steps: count words, then list the words of each count (values in arrival order)."""

from mrengine import Step


def count_words(path, line):
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


def by_count(word, count):
    yield count, word


def words_of(count, words):
    words = list(words)
    yield count, (len(words), words[:5])


steps = [
    Step(mapper=count_words, combiner=total, reducer=total, num_reducers=3),
    Step(mapper=by_count, reducer=words_of, num_reducers=2),
]
