"""Word count through the fast path: one `map_split` call per split counts its words in C
(`Counter.update` over `str.split`) and hands the engine already-combined pairs.

    mrengine run jobs/wordcount_fast.py sample_data/text -o /tmp/wc
"""

from collections import Counter


def map_split(lines):
    counts = Counter()
    for line in lines:
        counts.update(line.split())
    return counts


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
