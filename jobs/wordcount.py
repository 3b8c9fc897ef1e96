"""Word count, one record at a time: the classic MapReduce example.

    mrengine run jobs/wordcount.py sample_data/text -o /tmp/wc

The combiner is `sum_values`, a declared sum: the map side then adds each 1 into its word's running
count as it arrives, instead of keeping every 1 to combine later (see `mrengine.combiners`).
"""

from mrengine.combiners import sum_values


def mapper(path, line):
    for word in line.split():
        yield word, 1


def reducer(word, counts):
    yield word, sum(counts)


combiner = sum_values
