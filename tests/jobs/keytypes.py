"""Emits tuple, int, big-int and numpy keys/values; the reducer reports the types it received."""

import numpy as np

output_format = "jsonlines"


def mapper(path, line):
    for word in line.split():
        yield ("tuple", (len(word), word[0])), 1
        yield ("int", len(word)), np.array([1, len(word)], dtype=np.int64)
        yield ("big", 2**100 + len(word)), np.float32(0.5)
        yield ("bytes", word.encode()[:1]), 1


def reducer(key, values):
    values = list(values)
    kind, inner = key
    yield [kind, inner], {
        "key_type": type(inner).__name__,
        "value_types": sorted({type(v).__name__ for v in values}),
        "total": float(sum(np.sum(v) for v in values)),
    }


def partitioner(key, n):
    return ["tuple", "int", "big", "bytes"].index(key[0]) % n


num_reducers = 4
