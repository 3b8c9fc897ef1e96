"""Fetching one map output's partition from the worker that holds it."""

from __future__ import annotations

from typing import BinaryIO

from .. import comm
from ..errors import FetchFailedError, MrEngineError
from ..messages import Fetch, SegmentHeader, from_wire, to_wire


def fetch_segment(address: str, secret: bytes, job_id: str, attempt_id: str, partition: int,
                  map_index: int, out: BinaryIO, timeout: float = 30.0) -> SegmentHeader:
    """Copy the segment into `out`; its header (bytes and records) is returned. Any failure is a
    FetchFailedError naming the map task."""
    try:
        conn = comm.connect(address, secret, timeout=timeout)
    except MrEngineError as exc:
        raise FetchFailedError(f"cannot fetch map output {attempt_id} from {address}: {exc}", map_index) from None
    try:
        header: SegmentHeader = from_wire(conn.request(to_wire(Fetch(job_id, attempt_id, partition))))
        conn.recv_to_file(out, header.length)
        return header
    except MrEngineError as exc:
        raise FetchFailedError(f"fetching map output {attempt_id} from {address} failed: {exc}", map_index) from None
    finally:
        conn.close()
