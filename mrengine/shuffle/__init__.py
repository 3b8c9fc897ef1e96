"""The shuffle: partition map output, sort and spill it in compressed runs, merge runs, group by key.

Modules: `partition` (which reducer gets a key), `runs` (the on-disk block format), `buffer` (the
memory-bounded map output buffer), `merge` (k-way merge and grouping into streamed value iterators),
`order` (the one total order over every key type).
"""
