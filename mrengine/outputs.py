"""Output formats, every output file name, and the commit protocol.

A reduce attempt writes its own file, `OUT/_temporary/<job>/<attempt>/part-NNNNN`, so attempts of
one partition never share a name. The master commits the first attempt of each partition to
succeed (the winner) as `OUT/part-NNNNN`: a rename on local disks, a server-side copy on object
stores, where rename is copy + delete and not atomic, but a copied object appears whole or not at
all. When every partition is committed the job's temporary files go (losers, failed attempts,
the winners' originals), and `OUT/_SUCCESS` is written last, holding a manifest of each part's
bytes, records and CRC-32; `verify` checks an output against it. A job that fails removes its
temporary files and any part it had already committed, and never writes `_SUCCESS`, so no output
looks complete that is not. The records a job skipped (`--skip-bad-records`) are written to
`OUT/_skipped/step-N.jsonl`, one JSON line each, just before its `_SUCCESS`. Every name is built
here; nothing parses them back.
"""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable


from . import serde, storage
from .errors import RecordError, StorageError, UsageError

SUCCESS = "_SUCCESS"
TEMPORARY = "_temporary"
SKIPPED = "_skipped"  # hidden from a later job reading OUT as input, as every name starting with "_"


# ---------------------------------------------------------------- names


PART_PREFIX = "part-"


def part_name(partition: int) -> str:
    return f"{PART_PREFIX}{partition:05d}"


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def attempt_path(out: str, job_id: str, attempt_id: str, partition: int) -> str:
    return join(out, TEMPORARY, job_id, attempt_id, part_name(partition))


def skipped_name(step: int) -> str:
    """Where, under the job's output directory, the bad records a step skipped are listed."""
    return f"{SKIPPED}/step-{step}.jsonl"


def job_temp_dir(out: str, job_id: str) -> str:
    return join(out, TEMPORARY, job_id)


def write_check_path(out: str) -> str:
    """The empty file that proves `out` can be written, gone again before any task runs; hidden
    (a leading '_') from anyone listing the output as input, should the driver die in between."""
    return join(out, f"_write-check-{uuid.uuid4().hex[:12]}")


# ---------------------------------------------------------------- formats


def render(x: Any) -> str:
    """How a key or value appears in text output: strings as they are, everything else as JSON."""
    if isinstance(x, str):
        return x
    if type(x) is int:  # JSON's text of an int is its repr (a bool is not one); counts are most values
        return int.__repr__(x)
    return _JSON.encode(x)


def _json_default(x: Any) -> Any:
    np = sys.modules.get("numpy")  # not imported: x cannot be a numpy value
    if np is not None and isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    if isinstance(x, bytes):
        return x.decode("utf-8", "backslashreplace")
    raise RecordError(f"cannot write a value of type {type(x).__module__}.{type(x).__qualname__} as text")


# One encoder for every value: json.dumps with any argument builds a new one per call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


class _Counting:
    """Wraps a binary file, counting bytes and a CRC-32 of everything written."""

    def __init__(self, f: BinaryIO, what: str):
        self.f = f
        self.what = what
        self.bytes = 0
        self.crc = 0

    def write(self, data: bytes) -> None:
        with storage.translated(self.what):
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
        encode = _JSON.encode
        return "".join(encode([k, v]) + "\n" for k, v in pairs).encode("utf-8")


class MsgpackOutput(OutputFormat):
    """A stream of msgpack `[key, value]` arrays; keeps every type exact (chained steps use it)."""

    name = "msgpack"

    def encode(self, pairs):
        return b"".join(serde.dumps([k, v]) for k, v in pairs)


OUTPUT_FORMATS = {cls.name: cls for cls in (TextOutput, JsonLinesOutput, MsgpackOutput)}


def write_pairs(path: str, output_format: str | OutputFormat, pairs: Iterable[tuple], storage_options: dict | None,
                batch: int = 4096) -> dict:
    """Write (key, value) pairs to `path` in `output_format` (a name from OUTPUT_FORMATS, or an
    OutputFormat); returns {"bytes", "records", "crc32"} for the manifest."""
    writer = PartWriter(path, output_format, storage_options, batch)
    try:
        writer.write(pairs)
    except BaseException:
        writer.abandon()
        raise
    return writer.close()


class PartWriter:
    """One output file being written, `batch` pairs encoded at a time, for a writer that hands over its
    pairs in pieces (a map-only map, as its mapper yields them). `close()` returns what `write_pairs` does."""

    def __init__(self, path: str, output_format: str | OutputFormat, storage_options: dict | None, batch: int = 4096):
        self.fmt = output_format if isinstance(output_format, OutputFormat) else OUTPUT_FORMATS[output_format]()
        self.what, self.batch = f"output file {path!r}", batch
        self.records = 0
        self._chunk: list = []
        fs, fs_path = storage.filesystem(path, storage_options)
        with storage.translated(self.what, fs, fs_path):
            self._file = storage.create(fs, fs_path)
        self._out = _Counting(self._file, self.what)

    def write(self, pairs: Iterable[tuple]) -> None:
        chunk = self._chunk
        for pair in pairs:
            chunk.append(pair)
            if len(chunk) == self.batch:
                self._flush()

    def _flush(self) -> None:
        self._out.write(self.fmt.encode(self._chunk))
        self.records += len(self._chunk)
        self._chunk.clear()

    def close(self) -> dict:
        if self._chunk:
            self._flush()
        with storage.translated(self.what):
            self._file.close()  # on object stores the upload completes here
        return {"bytes": self._out.bytes, "records": self.records, "crc32": self._out.crc}

    def abandon(self) -> None:
        """Close after a failure: what was written stays in the attempt's own file; the master discards it."""
        with contextlib.suppress(Exception):
            self._file.close()


# ---------------------------------------------------------------- the commit protocol


def _fs(out: str, storage_options: dict | None):
    return storage.filesystem(out, storage_options)


def check_output_dir(out: str, overwrite: bool, storage_options: dict | None = None) -> None:
    """Refuse an output directory that already holds something (unless asked to overwrite it), or
    that cannot be written: both are found here, before any task runs.

    On object stores the "directory" is a key prefix: it exists while objects have it, so an
    existing one is never empty. A missing bucket is an error here too.
    """
    fs, path = _fs(out, storage_options)
    what = f"output directory {out!r}"
    with storage.translated(what, fs, path):
        _check_empty(fs, path, out, what, overwrite)
        _check_writable(fs, path, out, what)


def _check_empty(fs, path: str, out: str, what: str, overwrite: bool) -> None:
    try:
        info = fs.info(path)
    except FileNotFoundError:
        bucket = storage.missing_bucket(fs, path)
        if bucket:
            raise storage.bucket_error(what, bucket) from None
        return
    except NotADirectoryError:
        return  # under a file: _check_writable says which
    if info.get("type") != "directory":
        raise UsageError(f"output path {out!r} is a file; give a directory that does not exist yet")
    if not fs.ls(path):
        return
    if not overwrite:
        held = "a finished result" if fs.exists(join(path, SUCCESS)) else "files"
        raise UsageError(f"output directory {out!r} already holds {held}; choose a new directory or pass --overwrite to replace it")
    storage.remove_tree(fs, path)


def _check_writable(fs, path: str, out: str, what: str) -> None:
    """Write and remove an empty file in `path`, with the directories it needed: only a write shows
    that a write works (permissions, read-only mounts, bucket policies alike)."""
    created = _missing_dirs(fs, path, out)
    probe = write_check_path(path)
    try:
        storage.makedirs(fs, path)
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except FileNotFoundError as exc:  # a place that holds no new files, such as /proc
        raise StorageError(f"{what} cannot be created there ({exc.strerror or exc})") from None
    finally:
        for directory in created:
            storage.remove_empty_dir(fs, directory)


def _missing_dirs(fs, path: str, out: str) -> list[str]:
    """The directories above and at `path` that do not exist yet, deepest first; none on object stores."""
    missing: list[str] = []
    while not storage.has_buckets(fs) and not fs.exists(path):
        missing.append(path)
        path = fs._parent(path)
    if missing and not fs.isdir(path):
        raise UsageError(f"output directory {out!r} cannot be created: {path!r} is a file, not a directory")
    return missing


def commit_task(out: str, job_id: str, attempt_id: str, partition: int, storage_options: dict | None) -> dict:
    """Publish one winning attempt's file as the partition's part file; returns what was published
    (for `abort_job`, which removes the part only while it is still this one).

    Where a rename is atomic (local disks) the file is renamed. On object stores a rename is a copy
    and a delete; the copy alone publishes the part (a copied object appears whole or not at all),
    and the attempt's object goes with the rest of the job's temporary prefix in `commit_job`.
    """
    fs, src = _fs(attempt_path(out, job_id, attempt_id, partition), storage_options)
    dst = _fs(join(out, part_name(partition)), storage_options)[1]
    if storage.has_buckets(fs):
        fs.cp_file(src, dst)
    else:
        fs.mv(src, dst)
    return _identity(fs, dst)


def _identity(fs, path: str) -> dict | None:
    """What tells this file from another written under the same name later: inode and mtime on
    local disks, ETag on object stores (with the size); None when it is gone."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    return {k: info[k] for k in ("size", "ino", "mtime", "ETag", "etag", "LastModified") if k in info}


def clear_result(out: str, storage_options: dict | None, step: int = 0) -> None:
    """Remove an earlier result's part files, `_SUCCESS` and step `step`'s skipped records (for
    --overwrite, before the first new commit), so no part of the old result survives beside the new one."""
    fs, path = _fs(out, storage_options)
    with contextlib.suppress(FileNotFoundError):
        for name in fs.ls(path, detail=False):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith(PART_PREFIX) or base == SUCCESS:
                fs.rm_file(name)
        fs.rm_file(join(path, skipped_name(step)))
    storage.remove_empty_dir(fs, join(path, SKIPPED))


def discard_attempt(out: str, job_id: str, attempt_id: str, storage_options: dict | None) -> None:
    """Remove what a losing or failed attempt wrote."""
    fs, path = _fs(join(job_temp_dir(out, job_id), attempt_id), storage_options)
    storage.remove_tree(fs, path)


def commit_job(out: str, job_id: str, manifest: dict, storage_options: dict | None) -> None:
    """Remove the job's temporary files, then write `_SUCCESS` with the manifest, last: a reader
    that sees `_SUCCESS` sees every part and nothing else of the job's."""
    fs, path = _fs(out, storage_options)
    _remove_temp(fs, path, job_id)
    storage.makedirs(fs, path)  # a job with no reducers and no input has written nothing yet
    with fs.open(join(path, SUCCESS), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def write_skipped(out: str, step: int, entries: list[dict], storage_options: dict | None) -> None:
    """The bad records step `step` skipped, one JSON object a line, in `out`'s `skipped_name(step)`."""
    fs, path = _fs(join(out, skipped_name(step)), storage_options)
    with storage.create(fs, path, "w") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")


def write_json(out: str, name: str, value: dict | bytearray, storage_options: dict | None) -> None:
    """A JSON file `name` in the output directory (the job's `_REPORT.json`): `value`, or its JSON text in UTF-8."""
    fs, path = _fs(out, storage_options)
    storage.makedirs(fs, path)
    if isinstance(value, dict):
        value = (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()
    with fs.open(join(path, name), "wb") as f:
        f.write(value)


def abort_job(out: str, job_id: str, published: dict, storage_options: dict | None) -> None:
    """Undo a failed job: its temporary files and the parts it had already committed.

    `published` maps each committed partition to what `commit_task` returned: a part goes only while
    it is still the file this job committed, as another job (a rerun with --overwrite) may have
    replaced it since.
    """
    fs, path = _fs(out, storage_options)
    for p, identity in published.items():
        part = join(path, part_name(p))
        if _identity(fs, part) == identity:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(part)
    _remove_temp(fs, path, job_id)


def remove_job_temp(out: str, job_id: str, storage_options: dict | None) -> None:
    """Remove an ended job's temporary directory (and `_temporary` itself once empty)."""
    fs, path = _fs(out, storage_options)
    _remove_temp(fs, path, job_id)


def _remove_temp(fs, path: str, job_id: str) -> None:
    storage.remove_tree(fs, job_temp_dir(path, job_id))
    storage.remove_empty_dir(fs, join(path, TEMPORARY))


def round_dir(out: str, session: str, round_number: int) -> str:
    """Where a round of an iterative job writes the results it hands back to the driver."""
    return join(job_temp_dir(out, session), f"round-{round_number:05d}")


def staged_path(out: str, session: str, name: str) -> str:
    """Where an iterative job's own file `name` waits until the job succeeds (see `publish_staged`)."""
    return join(job_temp_dir(out, session), "files", name)


def publish_staged(out: str, session: str, storage_options: dict | None) -> dict:
    """Move the session's staged files into `out`; returns {name: bytes} for the manifest."""
    fs, _ = _fs(out, storage_options)
    staged = _fs(join(job_temp_dir(out, session), "files"), storage_options)[1].rstrip("/")
    published = {}
    if fs.exists(staged):
        for path, info in sorted(fs.find(staged, detail=True).items()):
            name = path[len(staged) + 1:]
            target = _fs(join(out, name), storage_options)[1]
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(path, target)
            published[name] = int(info.get("size") or 0)
    return published


def remove_dir(path: str, storage_options: dict | None) -> None:
    fs, p = _fs(path, storage_options)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def step_dir(out: str, step: int) -> str:
    """Where an intermediate step of a multi-step job writes (read by the next step)."""
    return join(out, TEMPORARY, f"step-{step}")


def remove_step_dirs(out: str, steps: int, storage_options: dict | None) -> None:
    fs, path = _fs(out, storage_options)
    for step in range(steps):
        storage.remove_tree(fs, _fs(step_dir(out, step), storage_options)[1])
    storage.remove_empty_dir(fs, join(path, TEMPORARY))


# ---------------------------------------------------------------- verifying a committed output

_VERIFY_CHUNK = 8 * 1024 * 1024


@dataclass
class Verification:
    """What `verify` found: the manifest's totals and every way the parts differ from it."""

    out: str
    job: str = "?"
    parts: int = 0
    records: int = 0
    files: int = 0  # the files a main(ctx) job wrote with ctx.open
    bytes: int = 0
    skipped: int = 0  # bad records the job skipped (`--skip-bad-records`) ...
    skipped_file: str = ""  # ... listed here
    problems: list = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.problems:
            return [f"{self.out}: {len(self.problems)} problem(s) against the manifest in {SUCCESS}:",
                    *(f"  {p}" for p in self.problems)]
        held = [f"{self.parts} part files, {self.records} records"] if self.parts or not self.files else []
        held += [f"{self.files} files"] if self.files else []
        plural = "s" * (self.skipped != 1)
        skipped = [f"  skipped {self.skipped} bad record{plural} (see {self.skipped_file})"] if self.skipped else []
        return [f"{self.out}: {', '.join(held)}, {self.bytes} bytes match the manifest of job {self.job}", *skipped]


def verify(out: str, storage_options: dict | None = None) -> Verification:
    """Re-read every part file of a committed output and check it against the `_SUCCESS` manifest:
    size, CRC-32 and (msgpack) record count per part, and no part files the manifest does not name;
    and the size of every file a main(ctx) job wrote."""
    fs, path = _fs(out, storage_options)
    report = Verification(out)
    with storage.translated(f"output directory {out!r}", fs, path):
        manifest = read_manifest(fs, path, out)
        expected = manifest.get("parts", {})
        report.job = manifest.get("job", "?")
        fmt = manifest.get("format", "text")
        present = set(fs.ls(path, detail=False))
        named = {join(path, name) for name in expected}
        for extra in sorted(p for p in present - named if p.startswith(join(path, PART_PREFIX))):
            report.problems.append(f"{extra[len(path) + 1:]} is not in the manifest")
        for name, want in sorted(expected.items()):
            report.parts += 1
            report.records += want["records"]
            report.bytes += want["bytes"]
            if join(path, name) not in present:
                report.problems.append(f"{name} is missing")
                continue
            got = _measure(fs, join(path, name), fmt)
            differs = [f"{key} {got[key]} (manifest: {want[key]})" for key in ("bytes", "crc32", "records")
                       if key in got and got[key] != want[key]]
            if "error" in got:
                differs.append(got["error"])
            if differs:
                report.problems.append(f"{name} differs: {', '.join(differs)}")
        for name, size in sorted(manifest.get("files", {}).items()):  # a main(ctx) job's, by size only
            report.files += 1
            report.bytes += size
            try:
                got = fs.info(join(path, name))["size"]
            except FileNotFoundError:
                report.problems.append(f"{name} is missing")
                continue
            if got != size:
                report.problems.append(f"{name} differs: bytes {got} (manifest: {size})")
        _verify_skipped(fs, path, out, manifest.get("skipped"), report)
    return report


def _verify_skipped(fs, path: str, out: str, skipped: dict | None, report: Verification) -> None:
    """The list of skipped bad records holds as many as the manifest says were skipped."""
    if not skipped:
        return
    report.skipped, report.skipped_file = skipped["records"], join(out, skipped["file"])
    try:
        with fs.open(join(path, skipped["file"]), "rb") as f:
            listed = sum(1 for line in f if line.strip())
    except FileNotFoundError:
        report.problems.append(f"{skipped['file']} (the {report.skipped} skipped bad records) is missing")
        return
    if listed != report.skipped:
        report.problems.append(f"{skipped['file']} lists {listed} skipped bad records (manifest: {report.skipped})")


def read_manifest(fs, path: str, out: str) -> dict:
    """The manifest in `out`'s `_SUCCESS`; a UsageError when `out` is no finished mrengine output."""
    if not fs.isdir(path):
        if fs.exists(path):
            raise UsageError(f"{out!r} is a file, not an output directory; give the directory `mrengine run -o` wrote")
        try:
            fs.info(path)  # raises what is missing: the directory, or its bucket
        except NotADirectoryError:
            raise FileNotFoundError(path) from None  # under a file: missing all the same
    try:
        with fs.open(join(path, SUCCESS), "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError(f"{out!r} is not a finished mrengine output: it has no {SUCCESS} (the job did not finish, "
                         f"or the directory was not written by `mrengine run`)") from None
    except IsADirectoryError:
        text = None
    why = "it is a directory" if text is None else "it is empty, as Hadoop's and Spark's are" if not text.strip() \
        else _manifest_flaw(text)
    if why:
        raise UsageError(f"{out!r} is not an mrengine output: its {SUCCESS} holds no mrengine manifest ({why})")
    return json.loads(text)


def _manifest_flaw(text: bytes) -> str | None:
    """What keeps `text` from being a manifest that `steps.manifest()` or a main(ctx) job wrote, if anything."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        return f"it is not JSON: {exc}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("job"), str):
        return "it names no job"
    parts, files = manifest.get("parts"), manifest.get("files")
    if parts is None and files is None:
        return "it lists neither parts nor files"
    if parts is not None and not (isinstance(parts, dict) and all(
            isinstance(want, dict) and all(type(want.get(k)) is int for k in ("bytes", "records", "crc32"))
            for want in parts.values())):
        return "its parts are not {name: {bytes, records, crc32}}"
    if files is not None and not (isinstance(files, dict) and all(type(size) is int for size in files.values())):
        return "its files are not {name: bytes}"
    return None


def _measure(fs, path: str, fmt: str) -> dict:
    """Bytes, CRC-32 and (for msgpack, a stream of [key, value] arrays) records of one part file, read
    once from start to end. Text and JSON lines are not counted: a text value may hold newlines, so
    lines need not be records, and with size and CRC-32 matching so does the count."""
    found = {"bytes": 0, "crc32": 0}
    unpacker = serde.unpacker() if fmt == MsgpackOutput.name else None
    if unpacker is not None:
        found["records"] = 0
    decoded = 0  # msgpack: where the last whole record ends
    with fs.open(path, "rb", block_size=_VERIFY_CHUNK) as f:
        while chunk := f.read(_VERIFY_CHUNK):
            found["bytes"] += len(chunk)
            found["crc32"] = zlib.crc32(chunk, found["crc32"])
            if unpacker is not None and "error" not in found:
                unpacker.feed(chunk)
                try:
                    for _ in unpacker:
                        found["records"] += 1
                        decoded = unpacker.tell()
                except Exception as exc:  # corrupt bytes can fail anywhere in decoding
                    found["error"] = f"does not decode as msgpack at byte {decoded}: {type(exc).__name__}: {exc}"
    if unpacker is not None and "error" not in found and decoded != found["bytes"]:
        found["error"] = f"ends inside a record (the last {found['bytes'] - decoded} bytes)"
    return found
