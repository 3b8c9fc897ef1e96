"""Sums each user's events of each kind, from JSON lines {"user", "kind", "n"}, into msgpack pairs
keyed by the tuple (user, kind)."""

input_format = "jsonlines"
output_format = "msgpack"


def mapper(path, event):
    yield (event["user"], event["kind"]), event["n"]


def reducer(key, values):
    yield key, sum(values)


combiner = reducer
