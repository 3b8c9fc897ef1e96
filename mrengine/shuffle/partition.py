"""Which reduce partition a key belongs to.

The default partitioner hashes the key's encoded bytes with CRC-32: the same key lands in the same
partition in every process, on every host and in both runners. Python's `hash()` would not do: it is
salted per process for str and bytes.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

from .. import serde
from ..errors import JobDefinitionError


def stable_partition(key: Any, num_partitions: int) -> int:
    """>>> stable_partition("the", 4) == stable_partition("the", 4)
    True
    """
    return zlib.crc32(serde.dumps(key)) % num_partitions


def checked_partitioner(partitioner: Callable[[Any, int], int] | None, num_partitions: int) -> Callable[[Any], int]:
    """key -> partition, checking that a user's partitioner answers an int in range."""
    if partitioner is None:
        return lambda key: stable_partition(key, num_partitions)

    def partition(key: Any) -> int:
        p = partitioner(key, num_partitions)
        if type(p) is not int or not 0 <= p < num_partitions:
            raise JobDefinitionError(
                f"partitioner({key!r}, {num_partitions}) returned {p!r}; it must return an int from 0 to {num_partitions - 1}"
            )
        return p

    return partition
