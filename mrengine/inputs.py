"""Input files → splits → records.

Paths are fsspec URLs (local paths, `s3://...`, `memory://...`). A pattern may name a file, a
directory (every file below it, skipping names that start with `_` or `.` as Hadoop does) or a glob.

Text files are cut into byte-range splits of about `split_size` bytes. Hadoop's line rule makes every
line belong to exactly one split: a split that does not start at byte 0 skips the partial line it
starts in, and every split reads the line that straddles its end. Said precisely, a split [start, end)
owns the lines that begin at an offset p with start < p <= end (and p = 0 for the first split).
Compressed files (.gz, .bz2, ...) cannot be cut and are one split each.

Text is UTF-8. Bytes that do not decode stop the task with a `RecordError` naming the file and the
byte offset: silently replacing them would change counts without anyone noticing. A line ends at
`\\n`; a `\\r` before it is dropped, so CRLF files read like LF files.

`text_blocks` reads the same lines under the same rule, but hands `map_split` whole blocks of them
(`TextBlocksInput`) instead of one record per line.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from . import serde, storage
from .errors import RecordError, StorageError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SPLIT_SIZE = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_GLOB_CHARS = "*?["
# Compressed files by name, as fsspec names their codecs (which read them): such a file cannot be
# cut, and is one split. Known here so that listing local files needs no fsspec import.
COMPRESSIONS = {"gz": "gzip", "bz2": "bz2", "xz": "xz", "lzma": "lzma", "zip": "zip", "lz4": "lz4", "zst": "zstd"}


class InputFile(NamedTuple):
    url: str
    size: int


class Split(NamedTuple):
    """A piece of one input file: bytes [start, end) under the line rule, or the whole file."""

    index: int
    url: str
    start: int
    end: int
    compression: str | None

    def describe(self) -> str:
        if self.compression or (self.start == 0 and self.end < 0):
            return f"{self.url} (whole file)"
        return f"{self.url} bytes {self.start}-{self.end}"


@dataclass
class Block:
    """Records read in one go: `values[i]` came with key `keys[i]`; `locate(i)` says where it was, and
    `offset(i)` at which byte of its file, for formats that know (None: they do not). A text_blocks
    block's `values` is one str of `records` lines."""

    keys: Any  # a list, or itertools.repeat of one key
    values: list
    locate: Callable[[int], str]
    offset: Callable[[int], int] | None = None
    records: int | None = None  # the records `values` holds, where that is not len(values): a block of text

    def pairs(self) -> Iterator[tuple]:
        return zip(self.keys, self.values)

    def record_count(self) -> int:
        return len(self.values) if self.records is None else self.records


# ---------------------------------------------------------------- listing and splitting


def _is_hidden(relative_path: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative_path.split("/") if part)


def list_inputs(patterns: list[str], storage_options: dict | None = None) -> list[InputFile]:
    """Every file the patterns name, sorted by URL; raises StorageError for a missing path or an empty match."""
    found: dict[str, int] = {}
    for pattern in patterns:
        fs, path = storage.filesystem(pattern, storage_options)
        with storage.translated(f"input path {pattern!r}", fs, path):
            matches = _expand(fs, path, pattern)
        for path, size in matches:
            found[_to_url(fs, path, pattern)] = size
    return [InputFile(url, size) for url, size in sorted(found.items())]


def _expand(fs, path: str, pattern: str) -> list[tuple[str, int]]:
    if any(ch in path for ch in _GLOB_CHARS):
        entries = fs.glob(path, detail=True)
        files = [(p, info) for p, info in entries.items() if info.get("type") != "directory"]
        if not files:
            if storage.missing_bucket(fs, path):  # globbing a missing bucket finds nothing, silently
                raise FileNotFoundError(path)
            raise StorageError(f"input pattern {pattern!r} matched no files")
        return [(p, int(info.get("size") or 0)) for p, info in files]
    info = fs.info(path)
    if info.get("type") != "directory":
        return [(path, int(info.get("size") or 0))]
    root = path.rstrip("/")
    files = [
        (p, int(i.get("size") or 0))
        for p, i in fs.find(root, detail=True).items()
        if i.get("type") != "directory" and not _is_hidden(p[len(root):])
    ]
    if not files:
        raise StorageError(f"input directory {pattern!r} holds no input files")
    return files


def _to_url(fs, path: str, pattern: str) -> str:
    if "://" not in pattern:
        return path  # keep local paths plain: they read better in messages
    return fs.unstrip_protocol(path)


def make_splits(files: list[InputFile], split_size: int = DEFAULT_SPLIT_SIZE, splittable: bool = True) -> list[Split]:
    """Cut files into splits; compressed files and unsplittable formats give one split per file."""
    if split_size <= 0:
        raise ValueError("split size must be positive")
    splits: list[Split] = []
    for f in files:
        if f.size == 0:
            continue  # holds no records
        compression = compression_of(f.url)
        if compression or not splittable:
            splits.append(Split(len(splits), f.url, 0, -1, compression))
            continue
        for start in range(0, f.size, split_size):
            splits.append(Split(len(splits), f.url, start, min(start + split_size, f.size), None))
    return splits


def compression_of(url: str) -> str | None:
    """The codec a file's name says it is compressed with, if any.

    >>> compression_of("s3://b/logs/day.gz"), compression_of("/data/part-00000")
    ('gzip', None)
    """
    return COMPRESSIONS.get(os.path.splitext(url)[1].lstrip(".").lower())


def open_input(url: str, storage_options: dict | None, compression: str | None = None, range_end: int = -1):
    """A file opened for binary reading (`storage.filesystem`'s); close it with `with`.

    `range_end >= 0`: the reader reads a split ending there (plus one line), so a remote object is
    fetched in ranges that stop near it rather than read ahead past it.
    """
    fs, path = storage.filesystem(url, storage_options)
    with storage.translated(f"input file {url!r}", fs, path):
        if range_end >= 0 and not compression:
            return storage.open_range(fs, path, range_end)
        return fs.open(path, "rb", compression=compression)


# ---------------------------------------------------------------- reading lines


def _read_line_chunks(f, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(file offset, bytes holding whole lines) for the lines a split owns; see the module docstring.

    `end < 0` means read to the end of the stream (whole-file splits).
    """
    limit = end if end >= 0 else float("inf")
    if start > 0:
        f.seek(start)
        base = start
        while True:  # skip to just past the first newline at or after `start`
            data = f.read(_READ_CHUNK)
            if not data:
                return
            nl = data.find(b"\n")
            if nl >= 0:
                base += nl + 1
                carry = data[nl + 1:]
                break
            base += len(data)
    else:
        base, carry = 0, b""
    while base <= limit:
        data = f.read(_READ_CHUNK)
        if not data:
            if not carry:
                return
            # End of file: what is left may lack its final newline; add it so the rule below applies.
            data = b"" if carry.endswith(b"\n") else b"\n"
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        if base + cut >= limit:  # the line holding byte `end` is our last one
            stop = buf.find(b"\n", max(int(limit - base), 0))
            yield base, buf[: stop + 1]
            return
        yield base, buf[: cut + 1]
        base += cut + 1
        carry = buf[cut + 1:]


def _decode(chunk: bytes, offset: int, url: str) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            f"{url}: bytes at offset {offset + exc.start} are not valid UTF-8 ({exc.reason}); "
            "mrengine reads text input as UTF-8 - convert the file, or read it with a custom input_format"
        ) from None


def _split_lines(text: str) -> list[str]:
    if text.endswith("\n"):
        text = text[:-1]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    return text.split("\n")


def _line_offset(offset: int, chunk: bytes) -> Callable[[int], int]:
    def line_offset(i: int) -> int:  # only called when reporting an error, so the re-split is fine
        return offset + sum(len(b) + 1 for b in chunk.split(b"\n", i)[:i])

    return line_offset


def _line_locator(url: str, offset: int, chunk: bytes) -> Callable[[int], str]:
    line_offset = _line_offset(offset, chunk)
    return lambda i: f"the line at byte offset {line_offset(i)}"


def iter_text_lines(split: Split, storage_options: dict | None) -> Iterator[tuple[int, bytes, list[str]]]:
    """(offset, raw chunk, decoded lines) for every chunk of lines the split owns."""
    with open_input(split.url, storage_options, split.compression, split.end) as f:
        for offset, chunk in _read_line_chunks(f, split.start, split.end):
            yield offset, chunk, _split_lines(_decode(chunk, offset, split.url))


# ---------------------------------------------------------------- formats


class InputFormat:
    """How a format's files become records: `read(split, storage_options)` yields `Block`s."""

    name = "?"
    splittable = False
    whole_blocks = False  # True: map_split gets each block's `values` whole (a numpy array, a str), not record by record
    map_split_only = False  # True: blocks are not records a mapper could take one at a time (`TextBlocksInput`)
    cacheable = False  # True: blocks are numpy arrays that iterative jobs may keep between rounds

    def read(self, split: Split, storage_options: dict | None) -> Iterator[Block]:
        raise NotImplementedError

    def cache_key(self) -> tuple:
        """What, with the split, identifies cached blocks: formats with options include them."""
        return (self.name,)


class TextInput(InputFormat):
    """One record per line: key = the file's URL, value = the line without its newline."""

    name = "text"
    splittable = True

    def read(self, split, storage_options):
        keys = repeat(split.url)
        for offset, chunk, lines in iter_text_lines(split, storage_options):
            yield Block(keys, lines, _line_locator(split.url, offset, chunk), _line_offset(offset, chunk))


class TextBlocksInput(InputFormat):
    """The text format's lines, for `map_split(blocks)` only: each block one `str` of whole lines.

    A split's lines are the ones the text format gives it (the same line rule), in blocks of about
    1 MiB (more where one line is longer), each line followed by `\\n` (the file's last line too, where the file does not end in one)
    and `\\r\\n` read as `\\n`: a block is `"".join(line + "\\n" for line in its lines)`. A job
    that splits a block on whitespace (`block.split()`) gets the words it would get line by line, with
    one call per block instead of one per line. `map_input_records` counts lines, as for text.
    There are no records a `mapper(key, value)` could take one at a time: a job with a mapper is
    refused (use `"text"`).
    """

    name = "text_blocks"
    splittable = True
    whole_blocks = True
    map_split_only = True

    def read(self, split, storage_options):
        keys = repeat(split.url)
        with open_input(split.url, storage_options, split.compression, split.end) as f:
            for offset, chunk in _read_line_chunks(f, split.start, split.end):
                text = _decode(chunk, offset, split.url)
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                yield Block(keys, text, lambda i, o=offset: f"the block at byte offset {o}",
                            records=chunk.count(b"\n"))


class JsonLinesInput(InputFormat):
    """One JSON document per line: key = the file's URL, value = the parsed document."""

    name = "jsonlines"
    splittable = True

    def read(self, split, storage_options):
        keys = repeat(split.url)
        for offset, chunk, lines in iter_text_lines(split, storage_options):
            locate = _line_locator(split.url, offset, chunk)
            values = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    values.append(json.loads(line))
                except ValueError as exc:
                    raise RecordError(f"{split.url}: {locate(i)} is not valid JSON: {exc}") from None
            yield Block(keys, values, locate, _line_offset(offset, chunk))


class MsgpackInput(InputFormat):
    """(key, value) records as the msgpack output format writes them: a stream of 2-element arrays."""

    name = "msgpack"
    splittable = False
    batch = 4096

    def read(self, split, storage_options):
        with open_input(split.url, storage_options, split.compression) as f:
            unpacker = serde.unpacker(f)
            count = 0
            while True:
                keys, values = [], []
                for key, value in unpacker:
                    keys.append(key)
                    values.append(value)
                    if len(keys) == self.batch:
                        break
                if not keys:
                    return
                base = count
                yield Block(keys, values, lambda i, b=base: f"record #{b + i}")
                count += len(keys)


class CustomInput(InputFormat):
    """A user's reader: `input_format(file, url)` gets a binary file and yields values; key = URL."""

    splittable = False
    batch = 1024

    def __init__(self, reader: Callable):
        self.reader = reader
        self.name = getattr(reader, "__name__", "custom")

    def read(self, split, storage_options):
        keys = repeat(split.url)
        with open_input(split.url, storage_options, split.compression) as f:
            values: list = []
            count = 0
            for value in self.reader(f, split.url):
                values.append(value)
                if len(values) == self.batch:
                    yield Block(keys, values, lambda i, b=count: f"record #{b + i}")
                    count += len(values)
                    values = []
            if values:
                yield Block(keys, values, lambda i, b=count: f"record #{b + i}")


# ---------------------------------------------------------------- numeric formats


class CsvInput(InputFormat):
    """Rows of numbers separated by `delimiter`: each split's rows as ONE read-only 2-D numpy array.

    Lines belong to splits under the text line rule; blank lines are skipped. `header="auto"` skips a
    file's first line when it does not read as numbers (True: always skip it, False: never). With
    `map_split(blocks)` the job gets an iterator of 2-D arrays (the whole split in one); `mapper(key,
    row)` gets the file's URL and one 1-D row. Arrays are read-only because iterative jobs share them
    across rounds. Use `CsvInput(delimiter=";", dtype="float32")` as a job's `input_format` for
    other layouts.
    """

    name = "csv"
    splittable = True
    whole_blocks = True  # map_split receives the blocks themselves, not their rows
    cacheable = True  # iterative jobs may keep the parsed blocks in memory between rounds
    delimiter = ","

    def __init__(self, delimiter: str | None = None, header: bool | str = "auto", dtype: str = "float64"):
        import numpy as np  # here, not at the top: text jobs start faster without it
        if header not in (True, False, "auto"):
            raise ValueError(f"header must be True, False or 'auto', not {header!r}")
        self.delimiter = delimiter or self.delimiter
        self.header = header
        self.dtype = np.dtype(dtype)

    def cache_key(self) -> tuple:
        return (self.name, self.delimiter, self.header, self.dtype.str)

    def read(self, split, storage_options):
        import numpy as np  # here, not at the top: text jobs start faster without it
        parts: list[np.ndarray] = []
        for offset, chunk, lines in iter_text_lines(split, storage_options):
            if offset == 0 and lines and self._is_header(lines[0]):
                skip = chunk.find(b"\n") + 1
                offset, chunk, lines = skip, chunk[skip:], lines[1:]
            rows = self._parse(lines, offset, chunk, split.url)
            if not len(rows):
                continue
            if parts and rows.shape[1:] != parts[0].shape[1:]:
                raise RecordError(f"{split.url}: rows near byte offset {offset} have {rows.shape[1]} columns, "
                                  f"rows before them {parts[0].shape[1]}")
            parts.append(rows)
        if parts:
            yield Block(repeat(split.url), _read_only(np.concatenate(parts) if len(parts) > 1 else parts[0]),
                        lambda i: f"data row #{i} of the split")

    def _is_header(self, line: str) -> bool:
        if self.header != "auto":
            return self.header
        try:
            [float(field) for field in line.split(self.delimiter)]
        except ValueError:
            return True
        return False

    def _parse(self, lines: list[str], offset: int, chunk: bytes, url: str) -> np.ndarray:
        import numpy as np  # here, not at the top: text jobs start faster without it
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data": only blank lines
                return np.loadtxt(lines, delimiter=self.delimiter, dtype=self.dtype, ndmin=2, comments=None)
        except ValueError:
            pass
        # Find the culprit line only now that parsing failed: the fast path above does not track lines.
        locate, width = _line_locator(url, offset, chunk), None
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                fields = np.loadtxt([line], delimiter=self.delimiter, dtype=self.dtype, ndmin=2, comments=None)
            except ValueError:
                raise RecordError(f"{url}: {locate(i)} is not a row of numbers separated by {self.delimiter!r}: "
                                  f"{line[:120]!r}") from None
            if width is not None and fields.shape[1] != width:
                raise RecordError(f"{url}: {locate(i)} has {fields.shape[1]} columns, the rows before it {width}")
            width = fields.shape[1]
        raise RecordError(f"{url}: the lines from byte offset {offset} do not read as rows of numbers")


class TsvInput(CsvInput):
    """Like `CsvInput`, with tab-separated columns."""

    name = "tsv"
    delimiter = "\t"


class NpyInput(InputFormat):
    """A `.npy` array cut by rows (its first axis): each split's rows as ONE read-only numpy array.

    Splits are byte ranges; a split [start, end) owns the rows whose first byte lies in it, found from
    the header's row size, so every row belongs to exactly one split and nothing is parsed. Compressed
    files are read whole. Arrays must be in C order and hold no Python objects.
    """

    name = "npy"
    splittable = True
    whole_blocks = True
    cacheable = True

    def read(self, split, storage_options):
        import numpy as np  # here, not at the top: text jobs start faster without it
        with open_input(split.url, storage_options, split.compression) as f:
            shape, dtype, data_start = self._header(f, split.url)
            row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
            rows = shape[0]
            if split.end < 0:  # a whole file
                first, last = 0, rows
            else:
                first = min(max(-(-(split.start - data_start) // row_bytes), 0), rows)
                last = min(max(-(-(split.end - data_start) // row_bytes), 0), rows)
                f.seek(data_start + first * row_bytes)
            if last <= first:
                return
            data = bytearray((last - first) * row_bytes)
            view, got = memoryview(data), 0
            while got < len(data):
                n = f.readinto(view[got:])
                if not n:
                    raise RecordError(f"{split.url}: the file ends before row {first + got // row_bytes} of the "
                                      f"{rows} its header announces; is it truncated?")
                got += n
            array = np.frombuffer(data, dtype=dtype).reshape((last - first, *shape[1:]))
            yield Block(repeat(split.url), _read_only(array), lambda i, b=first: f"row {b + i} of the array")

    @staticmethod
    def _header(f, url: str) -> tuple[tuple, np.dtype, int]:
        import numpy as np  # here, not at the top: text jobs start faster without it
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"format version {version} is not supported")
        except ValueError as exc:
            raise RecordError(f"{url} is not a readable .npy file ({exc}); pass only .npy files, e.g. 'DIR/*.npy'") from None
        if dtype.hasobject:
            raise RecordError(f"{url} holds Python objects (dtype {dtype}); mrengine reads only plain numeric .npy arrays")
        if fortran and len(shape) > 1:
            raise RecordError(f"{url} is stored in Fortran order, which cannot be cut by rows; "
                              "save it with np.save(path, np.ascontiguousarray(array))")
        if not shape or dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)) == 0:
            raise RecordError(f"{url} holds an array of shape {shape}, which has no rows of data to read")
        return shape, dtype, f.tell()


class NumericInput(InputFormat):
    """csv, tsv or npy, by each file's name: `.npy` and `.tsv` files (compressed or not) read as such,
    anything else as csv. Lets one job take numeric data in any of the three layouts."""

    name = "numeric"
    splittable = True
    whole_blocks = True
    cacheable = True

    def read(self, split, storage_options):
        url = split.url
        if split.compression:
            url = url.rsplit(".", 1)[0]
        fmt = NpyInput() if url.endswith(".npy") else TsvInput() if url.endswith(".tsv") else CsvInput()
        return fmt.read(split, storage_options)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


INPUT_FORMATS: dict[str, type[InputFormat]] = {
    cls.name: cls for cls in (TextInput, TextBlocksInput, JsonLinesInput, MsgpackInput, CsvInput, TsvInput, NpyInput, NumericInput)
}


def input_format(spec: str | Callable | InputFormat) -> InputFormat:
    """The format a job names: a name from INPUT_FORMATS, an InputFormat such as `CsvInput(delimiter=";")`,
    or a reader function."""
    if isinstance(spec, InputFormat):
        return spec
    if callable(spec):
        return CustomInput(spec)
    return INPUT_FORMATS[spec]()
