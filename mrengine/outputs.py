"""Output formats, every output file name, and the commit protocol.

A reduce attempt writes `OUT/_temporary/<job>/<attempt>/part-NNNNN`. The master commits one winning
attempt per partition by moving it to `OUT/part-NNNNN`, and when every partition is committed writes
`OUT/_SUCCESS` last, holding a manifest of each part's bytes, records and CRC-32. A job that fails
removes its temporary files and any part it had already committed, so no output looks complete that
is not. Every name is built here; nothing parses them back.
"""

from __future__ import annotations

import json
import sys
import zlib
from typing import Any, BinaryIO, Iterable

import fsspec

from . import serde
from .errors import StorageError, UsageError

SUCCESS = "_SUCCESS"
TEMPORARY = "_temporary"


# ---------------------------------------------------------------- names


def part_name(partition: int) -> str:
    return f"part-{partition:05d}"


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def attempt_path(out: str, job_id: str, attempt_id: str, partition: int) -> str:
    return join(out, TEMPORARY, job_id, attempt_id, part_name(partition))


def job_temp_dir(out: str, job_id: str) -> str:
    return join(out, TEMPORARY, job_id)


# ---------------------------------------------------------------- formats


def render(x: Any) -> str:
    """How a key or value appears in text output: strings as they are, everything else as JSON."""
    if isinstance(x, str):
        return x
    return json.dumps(x, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(x: Any) -> Any:
    np = sys.modules.get("numpy")  # not imported: x cannot be a numpy value
    if np is not None and isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, bytes):
        return x.decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot write a value of type {type(x).__name__} as text")


class _Counting:
    """Wraps a binary file, counting bytes and a CRC-32 of everything written."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.bytes = 0
        self.crc = 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.bytes += len(data)
        self.crc = zlib.crc32(data, self.crc)


class OutputFormat:
    name = "?"

    def encode(self, pairs: list) -> bytes:
        raise NotImplementedError


class TextOutput(OutputFormat):
    """`key<TAB>value` lines; a None key writes the value alone."""

    name = "text"

    def encode(self, pairs):
        return "".join(
            f"{render(v)}\n" if k is None else f"{render(k)}\t{render(v)}\n" for k, v in pairs
        ).encode("utf-8")


class JsonLinesOutput(OutputFormat):
    """`[key, value]` as one JSON document per line."""

    name = "jsonlines"

    def encode(self, pairs):
        return "".join(
            json.dumps([k, v], ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n"
            for k, v in pairs
        ).encode("utf-8")


class MsgpackOutput(OutputFormat):
    """A stream of msgpack `[key, value]` arrays; keeps every type exact (chained steps use it)."""

    name = "msgpack"

    def encode(self, pairs):
        return b"".join(serde.dumps([k, v]) for k, v in pairs)


OUTPUT_FORMATS = {cls.name: cls for cls in (TextOutput, JsonLinesOutput, MsgpackOutput)}


def write_pairs(path: str, fmt_name: str, pairs: Iterable[tuple], storage_options: dict | None, batch: int = 4096) -> dict:
    """Write (key, value) pairs to `path`; returns {"bytes", "records", "crc32"} for the manifest."""
    fmt = OUTPUT_FORMATS[fmt_name]()
    records = 0
    with fsspec.open(path, "wb", auto_mkdir=True, **(storage_options or {})) as f:
        out = _Counting(f)
        chunk: list = []
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) == batch:
                out.write(fmt.encode(chunk))
                records += len(chunk)
                chunk = []
        if chunk:
            out.write(fmt.encode(chunk))
            records += len(chunk)
    return {"bytes": out.bytes, "records": records, "crc32": out.crc}


# ---------------------------------------------------------------- the commit protocol


def _fs(out: str, storage_options: dict | None):
    return fsspec.core.url_to_fs(out, **(storage_options or {}))


def check_output_dir(out: str, overwrite: bool, storage_options: dict | None = None) -> None:
    """Refuse an output directory that already holds something, unless asked to overwrite it."""
    try:
        fs, path = _fs(out, storage_options)
        if not fs.exists(path):
            return
        if not fs.isdir(path):
            raise UsageError(f"output path {out!r} is a file; give a directory that does not exist yet")
        if not fs.ls(path):
            return
        if not overwrite:
            held = "a finished result" if fs.exists(join(path, SUCCESS)) else "files"
            raise UsageError(f"output directory {out!r} already holds {held}; choose a new directory or pass --overwrite to replace it")
        fs.rm(path, recursive=True)
    except UsageError:
        raise
    except Exception as exc:
        raise StorageError(f"output directory {out!r} cannot be checked or cleared: {exc}") from None


def commit_task(out: str, job_id: str, attempt_id: str, partition: int, storage_options: dict | None) -> None:
    """Publish one winning attempt's file as the partition's part file."""
    fs, _ = _fs(out, storage_options)
    src = _fs(attempt_path(out, job_id, attempt_id, partition), storage_options)[1]
    dst = _fs(join(out, part_name(partition)), storage_options)[1]
    fs.mv(src, dst)


def discard_attempt(out: str, job_id: str, attempt_id: str, storage_options: dict | None) -> None:
    """Remove what a losing or failed attempt wrote."""
    fs, path = _fs(join(out, TEMPORARY, job_id, attempt_id), storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def commit_job(out: str, job_id: str, manifest: dict, storage_options: dict | None) -> None:
    """Write `_SUCCESS` with the manifest, last; then remove the job's temporary directory."""
    fs, path = _fs(out, storage_options)
    fs.makedirs(path, exist_ok=True)
    with fs.open(join(path, SUCCESS), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    _remove_temp(fs, path, job_id)


def abort_job(out: str, job_id: str, partitions: Iterable[int], storage_options: dict | None) -> None:
    """Undo a failed job: its temporary files and the parts it had already committed."""
    fs, path = _fs(out, storage_options)
    for p in partitions:
        part = join(path, part_name(p))
        if fs.exists(part):
            fs.rm(part)
    _remove_temp(fs, path, job_id)


def _remove_temp(fs, path: str, job_id: str) -> None:
    temp = join(path, TEMPORARY)
    if fs.exists(join(temp, job_id)):
        fs.rm(join(temp, job_id), recursive=True)
    if fs.exists(temp) and not fs.ls(temp):
        fs.rmdir(temp)


def step_dir(out: str, step: int) -> str:
    """Where an intermediate step of a multi-step job writes (read by the next step)."""
    return join(out, TEMPORARY, f"step-{step}")


def remove_step_dirs(out: str, steps: int, storage_options: dict | None) -> None:
    fs, path = _fs(out, storage_options)
    for step in range(steps):
        step_path = _fs(step_dir(out, step), storage_options)[1]
        if fs.exists(step_path):
            fs.rm(step_path, recursive=True)
    temp = join(path, TEMPORARY)
    if fs.exists(temp) and not fs.ls(temp):
        fs.rmdir(temp)
