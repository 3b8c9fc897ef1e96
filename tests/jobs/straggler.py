"""Word count whose first reduce attempt to reach the key "s" stalls for `-p stall_seconds=S`: a
straggler for Spark's speculative execution to overtake with a copy on another executor. Every
reduce attempt that gets that far leaves a mark in `-p marks=DIR`; the stall happens once per run."""

import os
import time
import uuid

from mrengine import ctx


def reducer(word, counts):
    if word >= "s" and not ctx.counters["straggler", "past s"]:
        ctx.counter("straggler", "past s")
        marks = ctx.params["marks"]
        open(os.path.join(marks, f"reached-{uuid.uuid4().hex}"), "w").close()
        try:
            os.close(os.open(os.path.join(marks, "stalled"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            time.sleep(ctx.params["stall_seconds"])
        except FileExistsError:
            pass
    yield word, sum(counts)


def combiner(word, counts):
    yield word, sum(counts)


def mapper(path, line):
    for word in line.split():
        yield word, 1
