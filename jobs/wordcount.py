"""Word count, one record at a time: the classic MapReduce example.

    mrengine run jobs/wordcount.py sample_data/text -o /tmp/wc
"""


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
