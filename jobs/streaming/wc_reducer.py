#!/usr/bin/env python3
"""Streaming word count, the reducer: stdin sorted by word, `word<TAB>count` per word."""
import sys

word, count = None, 0
for line in sys.stdin:
    key, value = line.rstrip("\n").split("\t", 1)
    if key != word:
        if word is not None:
            print(f"{word}\t{count}")
        word, count = key, 0
    count += int(value)
if word is not None:
    print(f"{word}\t{count}")
