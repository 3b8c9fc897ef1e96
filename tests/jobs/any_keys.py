"""Keys of every type at once, from each word: each key's count, exact types kept (msgpack output).

1, 1.0 and True are different keys, as are 0.0 and -0.0; every NaN is the one key NaN.
"""

import numpy as np

output_format = "msgpack"


def mapper(path, line):
    for word in line.split():
        n = len(word)
        yield None, 1
        yield n, 1
        yield float(n), 1
        yield n % 2 == 0, 1
        yield n == 1, 1  # True, the same value as the int key 1
        yield word[:1], 1
        yield word[:1].encode(), 1
        yield (word[:1], n), 1
        yield [n % 3], 1
        yield -0.0 if n % 2 else 0.0, 1
        yield float("nan"), 1  # a new NaN object every time
        yield 2**70 + n, 1
        yield np.int64(n % 4), 1


def reducer(key, counts):
    yield key, sum(counts)
