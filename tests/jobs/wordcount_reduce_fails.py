"""Word count whose reducer fails on purpose, after it has already yielded (and so written) output.

-p fail_after=N   the reducer raises once it has yielded N words
-p fail_key=WORD  the reducer raises once it has yielded WORD
-p marker=PATH    ... only in the first attempt to create PATH (so exactly one attempt of the
                  whole job fails, and its retry succeeds); without it, in every attempt
"""

import os

from mrengine import ctx


def mapper(path, line):
    for word in line.split():
        yield word, 1


def combiner(word, counts):
    yield word, sum(counts)


def reducer(word, counts):
    yield word, sum(counts)
    ctx.counter("test", "reduced")  # counters belong to one attempt: a retry counts from 0
    if _planned(word) and _first_to_fail():
        raise RuntimeError(f"planned failure after {ctx.counters['test', 'reduced']} words")


def _planned(word) -> bool:
    return word == ctx.params.get("fail_key") or ctx.counters["test", "reduced"] == ctx.params.get("fail_after")


def _first_to_fail() -> bool:
    marker = ctx.params.get("marker")
    if marker is None:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
