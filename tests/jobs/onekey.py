"""Five million values for one key; the reducer proves they stream.

The reducer reports whether `values` is an iterator and how far the process's resident memory rose
while it consumed them (sampled every 100,000 values).
"""

import psutil

from mrengine import ctx

N = 5_000_000


def mapper(path, line):
    return ()


def mapper_final():
    for i in range(N):
        yield "only", i


def reducer(key, values):
    proc = psutil.Process()
    start = peak = proc.memory_info().rss
    count = total = 0
    is_iterator = iter(values) is values and not isinstance(values, (list, tuple))
    for v in values:
        count += 1
        total += v
        if count % 100_000 == 0:
            peak = max(peak, proc.memory_info().rss)
    ctx.counter("onekey", "values", count)
    yield key, {"count": count, "total": total, "is_iterator": is_iterator, "rss_growth": peak - start}
