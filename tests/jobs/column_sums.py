"""Sums each column of tab-separated rows of numbers (one map_split call per split of 2-D arrays)."""

input_format = "tsv"


def map_split(blocks):
    for a in blocks:
        for column, total in enumerate(a.sum(axis=0).tolist()):
            yield column, total


def reducer(column, totals):
    yield column, sum(totals)
