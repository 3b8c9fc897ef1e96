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
    """The reducer of `key`: the same in every process and on every host.

    >>> stable_partition("the", 4) == stable_partition("the", 4)
    True
    """
    return zlib.crc32(serde.dumps(key)) % num_partitions


def checked_partitioner(partitioner: Callable[[Any, int], int] | None, num_partitions: int) -> Callable[[Any], int]:
    """key -> partition, checking that a user's partitioner answers an int in range."""
    if partitioner is None:
        pack = serde.packer().pack  # the same bytes as `serde.dumps`, several times faster per key

        def default_partition(key: Any) -> int:
            try:
                data = pack(key)
            except (TypeError, ValueError, OverflowError):
                data = serde.dumps(key)  # raises the RecordError that says what cannot be encoded
            return zlib.crc32(data) % num_partitions

        return default_partition

    def partition(key: Any) -> int:
        p = partitioner(key, num_partitions)
        if type(p) is not int or not 0 <= p < num_partitions:
            raise JobDefinitionError(
                f"partitioner({key!r}, {num_partitions}) returned {p!r}; it must return an int from 0 to {num_partitions - 1}"
            )
        return p

    return partition
