"""The sort orders a step may ask for beyond "keys sorted, values in map order": how a step's
functions and groups are rewritten so that the one shuffle (partition, sort by `order.sort_key`,
merge, group) delivers them, in every runner alike.

- **Map-only** (`num_reducers = 0`): no shuffle at all. Each map task writes its own part file
  (`executor.map_to_part`), holding that map's pairs in the order the mapper yielded them; the step
  has no reduce tasks (`steps.reduce_tasks`). No combiner runs and no key is compared.
- **Secondary sort** (`sort_values = True`): a pair `(k, v)` travels under the key `(k, v)` and is
  partitioned on `k`, so the merge sorts a key's values too; reduce groups are regrouped on `k`. A
  combiner then sees one (key, value) group at a time, as Hadoop's does under a full sort comparator.
- **Key fields** (`partition_fields = M`): a str key is cut at `field_separator` and partitioned on
  its first M fields (a tuple or list key on its first M elements), as Hadoop's
  `KeyFieldBasedPartitioner`; it sorts as the whole key.
- **Total order** (`total_order = True`): `RangePartitioner` sends keys below the first cut point to
  partition 0 and so on, so the parts concatenated in order are sorted; the cut points are sampled
  from the input by `sampling` before the step is submitted.

>>> step = Step(mapper=lambda k, v: [(v, 1)], reducer=None, sort_values=True)
>>> list(map_side(step).mapper(None, "a"))
[(('a', 1), 1)]
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping
from itertools import chain, groupby
from typing import Any, Callable, Iterable, Iterator

from .job import Step
from .shuffle.order import ANY, group_key, kind_of, sort_key
from .shuffle.partition import stable_partition


def is_plain(step: Step) -> bool:
    """Whether the step's shuffle asks for no special order: its functions run as written."""
    return not (step.sort_values or step.partition_fields)


def map_side(step: Step) -> Step:
    """The step as its map tasks run it, for the shuffle: mapper output re-keyed for the order asked
    for. (A map-only step has no shuffle; its maps run it as written.)"""
    if is_plain(step):
        return step
    if step.sort_values:
        rekey = _with_value_in_key
        partitioner = _on_first(step.partitioner or _field_partitioner(step) or stable_partition)
    else:
        rekey, partitioner = pairs_of, _field_partitioner(step)
    return dataclasses.replace(
        step, mapper=_rekeyed(step.mapper, rekey), map_split=_rekeyed(step.map_split, rekey),
        mapper_init=_rekeyed(step.mapper_init, rekey), mapper_final=_rekeyed(step.mapper_final, rekey),
        partitioner=partitioner, combiner=shuffle_combiner(step), num_reducers=None, sort_values=False,
        partition_fields=None, total_order=False)


def shuffle_combiner(step: Step) -> Callable | None:
    """The combiner as it runs on the shuffled (re-keyed) pairs, on either side of the shuffle."""
    if step.combiner is None:
        return None
    return _value_keyed_combiner(step.combiner) if step.sort_values else step.combiner


def reduce_groups(step: Step, groups: Iterator[tuple[Any, Iterator]]) -> Iterator[tuple[Any, Iterator]]:
    """The (key, values) groups the step's reducer sees, from the merge's groups of re-keyed pairs."""
    if step.sort_values:
        return _regrouped(groups)
    return groups


def pairs_of(result: Any) -> Iterable:
    """What a job's function returned, as pairs: None is none, a dict or Counter its items."""
    if result is None:
        return ()
    if isinstance(result, Mapping):
        return result.items()
    return result


def _rekeyed(fn: Callable | None, rekey: Callable[[Iterable], Iterator]) -> Callable | None:
    if fn is None:
        return None

    def rekeyed(*args):
        return rekey(fn(*args))

    rekeyed.__wrapped__ = fn
    return rekeyed


def _with_value_in_key(pairs: Iterable) -> Iterator[tuple]:
    return (((key, value), value) for key, value in pairs_of(pairs))


def _regrouped(groups: Iterator[tuple[Any, Iterator]]) -> Iterator[tuple[Any, Iterator]]:
    """Consecutive ((k, v), values) groups of one k as one group of k, its values in sorted order."""
    for _, same in groupby(groups, key=lambda group: group_key(group[0][0])):
        first = next(same)
        yield first[0][0], chain(first[1], chain.from_iterable(values for _, values in same))


def _value_keyed_combiner(combiner: Callable) -> Callable:
    def combine(key, values):
        return _with_value_in_key(combiner(key[0], values))

    return combine


def _on_first(partitioner: Callable) -> Callable:
    def partition(key, num_partitions):
        return partitioner(key[0], num_partitions)

    return partition


def _field_partitioner(step: Step) -> Callable | None:
    if not step.partition_fields:
        return None
    n, separator = step.partition_fields, step.field_separator

    def partition(key, num_partitions):
        return stable_partition(leading_fields(key, n, separator), num_partitions)

    return partition


def leading_fields(key: Any, n: int, separator: str) -> Any:
    """The first `n` fields of a key: of a str cut at `separator`, of a tuple or list its first n elements.

    >>> leading_fields("a.b.c", 2, "."), leading_fields(("x", 1, 2), 1, "\\t")
    ('a.b', ('x',))
    """
    if isinstance(key, str):
        return separator.join(key.split(separator, n)[:n])
    if isinstance(key, (tuple, list)):
        return tuple(key[:n])
    return key


class RangePartitioner:
    """Key ranges between sorted cut points: partition i holds the keys from cut i-1 (included) to cut i.

    >>> p = RangePartitioner(["g", "p"])
    >>> [p(k, 3) for k in ("a", "g", "h", "z")]
    [0, 1, 1, 2]
    """

    def __init__(self, cuts: list):
        self.cuts = [sort_key(c) for c in cuts]
        # Keys of the cuts' one plain type compare as they are, skipping a sort_key call per key.
        self.plain_type = type(cuts[0]) if cuts and kind_of(cuts) != ANY else None
        self.plain_cuts = list(cuts)

    def __call__(self, key: Any, num_partitions: int) -> int:
        if type(key) is self.plain_type:
            return min(bisect.bisect_right(self.plain_cuts, key), num_partitions - 1)
        return min(bisect.bisect_right(self.cuts, sort_key(key)), num_partitions - 1)
