"""The wire format, without sockets: frames are a 4-byte big-endian length and a msgpack map.

Every message is a map with a "type"; replies to a request are a map too, with type "error" (and a
"message" and "error" class name) when the request failed. Frames over the size limit, payloads that
do not decode and maps without a type are a `ProtocolError`: the connection that sent them is closed.
"""

from __future__ import annotations

import struct
from typing import Any

from . import serde
from .errors import ProtocolError

VERSION = 12  # 2: heartbeats name attempts by (job, attempt); fetch failures name the map attempt
#             3: a job's pickled code travels once per worker (heartbeat "jobs"), not with every task
#             4: every message is a `messages` dataclass, its fields by name (no positional lists)
#             5: every frame after the handshake is sealed (comm, channel); the handshake says if encrypted
#             6: tasks carry their limits and session (a worker of 5 would ignore them); `kill`
#             7: tasks carry the records to skip, failures the record and whether the worker is to blame
#             8: a reduce's map sources travel as columns (`MapSources`), each shuffle server named once
#             9: a map's segments travel as columns of bytes and records (`MapOutput`); a reduce's sources
#                name the rows to fetch, and the shuffle server sends each segment's records with it;
#                and a driver's status request may wait for its job's end (`JobStatusRequest.wait`)
#            10: the map source columns a job's reduces share travel once per worker and generation
#                (`SharedSources`, heartbeat and reply "sources"); a reduce's spec names one (`SourcesRef`)
#            11: `SharedSources` rows are the map tasks in order, each its shuffle server and its winning
#                attempt's number (no map index column, no attempt id strings: a seventh of the bytes)
#            12: where splits ran (`StepStatus.map_workers`, `StepSpec.prefer`) travels as columns naming
#                each file once (`SplitPlaces`), not as a map per split
HEADER = struct.Struct("!I")
DEFAULT_MAX_FRAME = 256 * 1024 * 1024


def encode(msg: dict, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    payload = serde.dumps(msg)
    if len(payload) > max_frame:
        raise ProtocolError(f"message {msg.get('type')!r} is {len(payload)} bytes, over the frame limit of {max_frame}")
    return HEADER.pack(len(payload)) + payload


def frame_length(header: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> int:
    (length,) = HEADER.unpack(header)
    if length > max_frame:
        raise ProtocolError(f"peer announced a {length}-byte frame, over the limit of {max_frame}")
    return length


def decode(payload: bytes) -> dict:
    try:
        msg = serde.loads(payload)
    except Exception as exc:
        raise ProtocolError(f"frame does not decode: {type(exc).__name__}: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("frame is not a message (a map with a 'type')")
    return msg


def error_reply(exc: BaseException) -> dict:
    return {"type": "error", "error": type(exc).__name__, "message": str(exc), "args": list(map(_plain, exc.args))}


def _plain(x: Any) -> Any:
    return x if isinstance(x, (str, int, float, bool, type(None), list, tuple, dict, bytes)) else str(x)
