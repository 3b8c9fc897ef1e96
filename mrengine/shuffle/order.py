"""The one order of keys: every key a mapper may yield sorts and groups, whatever the mix of types.

Keys are the same key exactly when `serde` encodes them to the same bytes — the bytes the partitioner
hashes — so 1, 1.0, True and numpy.int64(1) are four keys, and 0.0 and -0.0 two. The order:

    None < False < True < numbers < str < bytes < lists < tuples < dicts < numpy arrays < other numpy scalars

- numbers (int of any size, float, numpy integer and floating scalars) by value, exactly; -0.0 just
  before 0; NaNs after every other number. Equal values of different types: int, then float, then
  numpy scalars by dtype (so 1 < 1.0 < numpy.int64(1)).
- str by code point (as Python, and as their UTF-8 bytes), bytes byte by byte.
- lists, tuples: element by element in this order, a prefix first (as Python compares them).
- dicts: their items in insertion order, as a sequence of (key, value); arrays: by dtype, shape, then
  elements in row-major order. numpy bool scalars sort with the bools, after the Python bool.

`sort_key(key)` maps a key to nested tuples of plain values that Python compares in this order and
that are equal only for the same key. It costs a Python call per key, so keys that are all of one
"plain" type — all `str`, all `bytes` or all `int`, by far the common case — sort as they are:
Python's own order on them is this order, and equal ones are the same key. A sorted run of pairs
records which of these it is (its `kind`); merging runs of one plain kind stays plain.

>>> sorted([3, "a", None, -0.0, (1, 2), 0, float("nan"), True, b"z", [1], 2.5], key=sort_key)
[None, True, -0.0, 0, 2.5, 3, nan, 'a', b'z', [1], (1, 2)]
"""

from __future__ import annotations

import math
import struct
import sys
from operator import itemgetter
from typing import Any, Callable, Iterable

# The kinds of a sorted run: one plain type for all its keys, or ANY (sorted by `sort_key`).
STR, BYTES, INT, ANY = "s", "b", "i", "x"
KINDS = (STR, BYTES, INT, ANY)
_PLAIN = {str: STR, bytes: BYTES, int: INT}
PLAIN_TYPES = frozenset(_PLAIN)

_NONE, _BOOL, _NUMBER, _STRING, _BYTES, _LIST, _TUPLE, _DICT, _ARRAY, _OTHER = range(10)
_PY_INT, _PY_FLOAT, _NUMPY = range(3)  # ties between equal numbers
_DOUBLE = struct.Struct(">d")

_first = itemgetter(0)


def kind_of(keys: Iterable) -> str:
    """STR, BYTES or INT when every key is of exactly that type (subclasses excluded), else ANY."""
    types = set(map(type, keys))
    return _PLAIN.get(types.pop(), ANY) if len(types) == 1 else ANY


def combined_kind(kinds: Iterable[str]) -> str:
    """The kind of a merge of runs of these kinds."""
    kinds = set(kinds)
    return kinds.pop() if len(kinds) == 1 else ANY


def pair_key(kind: str) -> Callable[[tuple], Any]:
    """The key that sorts, merges and groups (key, value) pairs of this kind."""
    return _first if kind != ANY else _pair_sort_key


def _pair_sort_key(pair: tuple) -> tuple:
    return sort_key(pair[0])


def group_key(key: Any) -> Any:
    """A hashable stand-in for `key` that equals only the stand-ins of the same key: the key itself when
    it is of a plain type or a tuple of them (where == is exactly "the same key"), else its sort_key in a
    1-tuple (which no such key equals)."""
    t = type(key)
    if t in _PLAIN or (t is tuple and PLAIN_TYPES.issuperset(map(type, key))):
        return key
    return (sort_key(key),)


def same_key(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and type(a) in _PLAIN and a == b) or sort_key(a) == sort_key(b)


def sort_key(key: Any) -> tuple:
    """Nested tuples of plain values, compared by Python in the order above, equal only for the same key."""
    t = type(key)
    if t is str:
        return (_STRING, key)
    if t is int:
        return (_NUMBER, 0, key, 1, _PY_INT, "", b"")
    if key is None:
        return (_NONE,)
    if t is bool:
        return (_BOOL, int(key), 0)
    if t is float:
        return _float_key(key, _PY_FLOAT, "", b"")
    if t is bytes:
        return (_BYTES, key)
    if t is tuple:
        return (_TUPLE, tuple(map(sort_key, key)))
    # Subclasses travel as their base type (serde encodes them so): an IntEnum is its int, numpy.str_ a str.
    if isinstance(key, str):
        return (_STRING, str(key))
    if isinstance(key, bytes):
        return (_BYTES, bytes(key))
    np = sys.modules.get("numpy")  # not imported: key cannot be a numpy value
    if np is not None and isinstance(key, (np.ndarray, np.generic)):
        return _numpy_key(np, key)
    if isinstance(key, bool):
        return (_BOOL, int(key), 0)
    if isinstance(key, int):
        return sort_key(int(key))
    if isinstance(key, float):
        return sort_key(float(key))
    if isinstance(key, tuple):
        return (_TUPLE, tuple(map(sort_key, key)))
    if isinstance(key, list):
        return (_LIST, tuple(map(sort_key, key)))
    if isinstance(key, dict):
        return (_DICT, tuple((sort_key(k), sort_key(v)) for k, v in key.items()))
    # Not a key mrengine can encode: it sorts last, and writing it raises the error that says so.
    return (_OTHER + 1, f"{t.__module__}.{t.__qualname__}", id(key))


def _float_key(value: float, rank: int, dtype: str, raw: bytes) -> tuple:
    if math.isnan(value):
        return (_NUMBER, 1, rank, dtype, raw or _DOUBLE.pack(value))
    return (_NUMBER, 0, value, math.copysign(1, value), rank, dtype, raw)


def _numpy_key(np, key) -> tuple:
    if isinstance(key, np.ndarray):
        # Elements in order where they are numbers, bools or strings; the raw bytes decide the rest.
        elements = tuple(map(sort_key, key.ravel().tolist())) if key.dtype.kind in "biufUS" else ()
        return (_ARRAY, key.dtype.str, key.shape, elements, key.tobytes())
    dtype, raw = key.dtype.str, key.tobytes()
    if isinstance(key, np.bool_):
        return (_BOOL, int(key), 1)
    if isinstance(key, np.integer):
        return (_NUMBER, 0, int(key), 1, _NUMPY, dtype, raw)
    if isinstance(key, np.floating):
        return _float_key(float(key), _NUMPY, dtype, raw)
    return (_OTHER, dtype, raw)
