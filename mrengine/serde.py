"""Record encoding: msgpack with extension types, so values come back as the type they went in.

Plain msgpack turns tuples into lists, cannot hold ints beyond 64 bits and knows nothing of numpy.
The extension types below keep those apart; anything else fails with a `RecordError` naming the type
(no silent pickle fallback: records cross machines and must stay readable by the Spark runner too).
Subclasses of the built-in types travel as their base type: an IntEnum as its int, a namedtuple as a
tuple, numpy.str_ as a str.

>>> loads(dumps((1, "a", b"b", [2**80, 1.5])))
(1, 'a', b'b', [1208925819614629174706176, 1.5])
"""

from __future__ import annotations

import sys
from typing import Any

import msgpack

from .errors import RecordError

_TUPLE = 1
_BIGINT = 2
_NDARRAY = 3
_NPSCALAR = 4


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, dumps(list(obj)))
    if isinstance(obj, int):
        if type(obj) is int:  # out of msgpack's 64-bit range
            size = (obj.bit_length() + 8) // 8
            return msgpack.ExtType(_BIGINT, obj.to_bytes(size, "big", signed=True))
        return int(obj)  # bool is native; IntEnum and friends travel as plain ints
    if isinstance(obj, str):
        return str(obj)  # subclasses, numpy.str_ included: as a str (so equal strings are one key)
    if isinstance(obj, bytes):
        return bytes(obj)  # likewise numpy.bytes_
    np = sys.modules.get("numpy")  # not imported: obj cannot be a numpy value (and we spare its import time)
    if np is not None and isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise RecordError(f"cannot encode a numpy array of dtype object (shape {obj.shape})")
        arr = np.ascontiguousarray(obj)
        return msgpack.ExtType(_NDARRAY, dumps([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if np is not None and isinstance(obj, np.generic):
        return msgpack.ExtType(_NPSCALAR, dumps([obj.dtype.str, obj.tobytes()]))
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, dict):
        return dict(obj)  # Counter, OrderedDict, defaultdict
    if isinstance(obj, list):
        return list(obj)
    raise RecordError(
        f"cannot encode a value of type {type(obj).__module__}.{type(obj).__qualname__}: records may "
        "hold None, bool, int, float, str, bytes, list, tuple, dict and numpy arrays or scalars"
    )


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(loads(data))
    if code == _BIGINT:
        return int.from_bytes(data, "big", signed=True)
    if code in (_NDARRAY, _NPSCALAR):
        import numpy as np
    if code == _NDARRAY:
        dtype, shape, raw = loads(data)
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _NPSCALAR:
        dtype, raw = loads(data)
        return np.frombuffer(raw, dtype=np.dtype(dtype))[0]
    return msgpack.ExtType(code, data)


_PACK_OPTIONS = dict(default=_default, use_bin_type=True, strict_types=True)
_UNPACK_OPTIONS = dict(ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)


def dumps(obj: Any) -> bytes:
    """Encode one value."""
    try:
        return msgpack.packb(obj, **_PACK_OPTIONS)
    except (TypeError, ValueError, OverflowError) as exc:
        raise RecordError(f"cannot encode a value of type {type(obj).__qualname__}: {exc}") from None


def packer() -> msgpack.Packer:
    """A reusable encoder for hot loops: `packer().pack(x) == dumps(x)`, minus building an encoder per
    call. Not thread-safe: one per user."""
    return msgpack.Packer(**_PACK_OPTIONS)


def loads(data: bytes) -> Any:
    """Decode one value written by `dumps`."""
    return msgpack.unpackb(data, **_UNPACK_OPTIONS)


def unpacker(file=None, max_buffer_size: int = 0) -> msgpack.Unpacker:
    """A streaming decoder for a sequence of values, fed bytes or reading from `file`."""
    return msgpack.Unpacker(file, max_buffer_size=max_buffer_size, **_UNPACK_OPTIONS)
