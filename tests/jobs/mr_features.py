"""An mrjob job using most of mrjob's job API at once, for comparing mrengine with mrjob's runners.

Step 1 counts words per (first letter, word), and the lines of each input file, with task hooks, a combiner and counters; words in
FILES' stop list or in the --extra-stop file are dropped. Step 2 lists each letter's words in value
order (SORT_VALUES) with the input file's name from jobconf_from_env. --internal and --out name the
protocols (mrjob.protocol class names); --bytes makes every key and value bytes, for BytesProtocol.
"""

import os

import mrjob.protocol as protocols
from mrjob.compat import jobconf_from_env
from mrjob.job import MRJob
from mrjob.step import MRStep


class MRFeatures(MRJob):
    FILES = ["mr_features_stop.txt"]
    SORT_VALUES = True

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--internal", default="JSONProtocol")
        self.add_passthru_arg("--out", default="JSONProtocol")
        self.add_passthru_arg("--bytes", action="store_true")
        self.add_file_arg("--extra-stop")

    def internal_protocol(self):
        return getattr(protocols, self.options.internal)()

    def output_protocol(self):
        return getattr(protocols, self.options.out)()

    def _b(self, s):
        return s.encode() if self.options.bytes else s

    def _s(self, b):
        return b.decode() if isinstance(b, bytes) else b

    def steps(self):
        return [MRStep(mapper_init=self.load_stop, mapper=self.words, mapper_final=self.mapper_done,
                       combiner=self.add, reducer_init=self.reducer_start, reducer=self.add_up,
                       reducer_final=self.reducer_done),
                MRStep(reducer=self.by_letter)]

    def load_stop(self):
        names = ["mr_features_stop.txt"] + ([self.options.extra_stop] if self.options.extra_stop else [])
        assert all(os.path.exists(n) for n in names), os.listdir(".")
        self.stop = {w for n in names for w in open(n).read().split()}
        self.file = os.path.basename(jobconf_from_env("mapreduce.map.input.file"))
        self.lines = 0

    def words(self, _, line):
        self.lines += 1
        for word in line.lower().split():
            if word.isalpha() and word not in self.stop:
                self.increment_counter("features", "words")
                yield self._b(f"{word[0]}|{word}"), self._b("1")

    def mapper_done(self):
        self.set_status("mapped")
        yield self._b(f"#|{self.file}"), self._b(str(self.lines))

    def add(self, key, counts):
        yield key, self._b(str(sum(int(self._s(c)) for c in counts)))

    def reducer_start(self):
        self.increment_counter("features", "reducers")

    def add_up(self, key, counts):
        letter, word = self._s(key).split("|")
        yield self._b(letter), self._b(f"{word}={sum(int(self._s(c)) for c in counts)}")

    def reducer_done(self):
        self.increment_counter("features", "reducers_done")

    def by_letter(self, letter, words):
        yield letter, self._b(",".join(self._s(w) for w in words))


if __name__ == "__main__":
    MRFeatures.run()
