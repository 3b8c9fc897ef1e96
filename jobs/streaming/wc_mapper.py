#!/usr/bin/env python3
"""Streaming word count, the mapper: `word<TAB>1` per word of stdin."""
import sys

for line in sys.stdin:
    for word in line.split():
        print(f"{word}\t1")
