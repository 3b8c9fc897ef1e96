"""Reads (user, kind) -> n pairs as json_totals.py writes them and adds up each user's."""

input_format = "msgpack"


def mapper(key, n):
    user, kind = key
    yield user, n


def reducer(user, counts):
    yield user, sum(counts)
