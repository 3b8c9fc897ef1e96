"""Word count through the fast path: one `map_split` call per split counts its words in C
(`Counter.update` over `str.split`) and hands the engine already-combined pairs.

    mrengine run jobs/wordcount_fast.py sample_data/text -o /tmp/wc

`input_format = "text_blocks"` hands `map_split` the split's lines in blocks of about 1 MiB (one `str`
of whole lines each), so each block is split into words by one call rather than line by line;
splitting on whitespace across line ends gives the same words.
"""

from collections import Counter

input_format = "text_blocks"


def map_split(blocks):
    counts = Counter()
    for block in blocks:
        counts.update(block.split())
    return counts


def reducer(word, counts):
    yield word, sum(counts)


combiner = reducer
