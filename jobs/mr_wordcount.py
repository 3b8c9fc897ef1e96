"""Word count as an mrjob job, unchanged mrjob code: `mrengine run` runs it as mrjob's own runners do.

    mrengine run jobs/mr_wordcount.py sample_data/text -o /tmp/wc       # mrengine
    python jobs/mr_wordcount.py -r local sample_data/text               # mrjob's local runner (pip install mrjob)

The output is `word<TAB>count` lines (RawProtocol), the same as jobs/wordcount.py writes.
"""

from mrjob.job import MRJob
from mrjob.protocol import RawProtocol


class MRWordCount(MRJob):
    OUTPUT_PROTOCOL = RawProtocol

    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, str(sum(counts))


if __name__ == "__main__":
    MRWordCount.run()
