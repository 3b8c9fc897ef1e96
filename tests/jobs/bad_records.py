"""Writes a line per attempt to the file `-p attempts=PATH` names; with `-p bad=set` its mapper yields a
set, which no record may hold."""

from mrengine import ctx


def mapper_init():
    with open(ctx.params["attempts"], "a", encoding="utf-8") as f:
        f.write("attempt\n")


def mapper(path, line):
    for word in line.split():
        yield word, ({1, 2} if ctx.params.get("bad") == "set" and word == "three" else 1)


def reducer(word, counts):
    yield word, sum(counts)
