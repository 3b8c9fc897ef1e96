"""Storage behind one small facade: an fsspec URL plus options gives a filesystem, and whatever a
backend raises becomes one clear `StorageError`.

Object stores (S3 and the like) keep objects in buckets and have no directories: a "directory" is
a key prefix, exists while some object has it, and never needs creating. `has_buckets` tells the
callers which kind they hold. For S3 the options get defaults that suit a batch engine: no listing
cache (a long-lived master must see what the workers wrote a moment ago) and bounded retries, so an
unreachable endpoint fails in seconds (see `S3_ATTEMPTS`) instead of minutes; `--storage-option
config_kwargs=...` overrides them.

A remote split is read through `RangeReader`: ranged GETs of at most `RANGE_BLOCK` bytes that stop
at the split's end, then small GETs for the line that straddles it, so a split transfers about its
own bytes, never the whole object.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Iterator

from .errors import StorageError
from .localfiles import LocalFiles, is_local, local_path

# botocore retries connection errors, throttling and 5xx with jittered backoff (standard mode), up
# to S3_ATTEMPTS attempts; s3fs then tries each call S3_CALL_TRIES times. A refusing endpoint fails
# within a few seconds, one that drops packets within about S3_CALL_TRIES * S3_ATTEMPTS * 5 s.
S3_CONNECT_TIMEOUT = 5
S3_ATTEMPTS = 3
S3_CALL_TRIES = 2
S3_PROTOCOLS = ("s3", "s3a")

RANGE_BLOCK = 16 * 1024 * 1024  # S3 serves 8-16 MiB ranges at full speed
RANGE_TAIL = 16 * 1024  # the first read past a split's end: most lines are far shorter

_HINTS = {"s3": "pip install 'mrengine[s3]'", "s3a": "pip install 'mrengine[s3]'"}


def _with_defaults(protocol: str, storage_options: dict | None) -> dict:
    options = dict(storage_options or {})
    if protocol != "file":
        options.setdefault("use_listings_cache", False)
    if protocol in S3_PROTOCOLS:
        defaults = {"connect_timeout": S3_CONNECT_TIMEOUT, "retries": {"mode": "standard", "max_attempts": S3_ATTEMPTS}}
        options["config_kwargs"] = {**defaults, **(options.get("config_kwargs") or {})}  # fresh: botocore edits it
    return options


def absolute_url(url: str) -> str:
    """A local path made absolute where the driver runs (the master and workers may run elsewhere, in
    another directory); a URL with a scheme (s3://, file://, ...) as it is.

    >>> absolute_url("s3://bucket/out"), absolute_url("/data/in.txt")
    ('s3://bucket/out', '/data/in.txt')
    """
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


_LOCAL = LocalFiles()


def filesystem(url: str, storage_options: dict | None = None) -> tuple:
    """(filesystem, path inside it) for a URL; raises StorageError when the backend is missing.
    Local paths without options are `LocalFiles`: a local job never imports fsspec."""
    if is_local(url) and not storage_options:
        return _LOCAL, local_path(url)
    import fsspec

    protocol = fsspec.utils.get_protocol(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **_with_defaults(protocol, storage_options))
    except ImportError as exc:
        hint = _HINTS.get(protocol, f"install the fsspec backend for {protocol}://")
        raise StorageError(f"{url!r} needs a storage backend that is not installed ({exc}); {hint}") from None
    except (TypeError, ValueError) as exc:
        raise StorageError(f"storage options {sorted(storage_options or {})} do not suit {url!r}: {exc}") from None
    if protocol in S3_PROTOCOLS:
        fs.retries = S3_CALL_TRIES
    return fs, path


def has_buckets(fs) -> bool:
    """An object store (S3, GCS, Azure): buckets and key prefixes, no directories to create."""
    return hasattr(fs, "split_path")


def makedirs(fs, path: str) -> None:
    """Create a directory where directories exist; object stores need none (and s3fs would
    create a missing *bucket*, hiding a typo in its name)."""
    if not has_buckets(fs):
        fs.makedirs(path, exist_ok=True)


def create(fs, path: str, mode: str = "wb", **text):
    """`path` opened to write a new file, with the directories above it where directories exist."""
    makedirs(fs, fs._parent(path))
    return fs.open(path, mode, **text)


def remove_tree(fs, path: str) -> None:
    """Remove `path` and everything below it, if there is anything. On object stores only the
    objects are deleted (in bulk), never the bucket, even when `path` is the bucket's root."""
    if has_buckets(fs):
        keys = fs.find(path)
        if keys:
            fs.rm(keys)
        return
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def remove_empty_dir(fs, path: str) -> None:
    """Remove a directory that is left empty; on object stores an empty prefix is already gone."""
    if has_buckets(fs):
        return
    try:
        if not fs.ls(path):
            fs.rmdir(path)
    except FileNotFoundError:
        pass


def missing_bucket(fs, path: str) -> str | None:
    """The bucket `path` lives in, if that bucket does not exist (or these credentials cannot see it)."""
    if not has_buckets(fs):
        return None
    bucket = fs.split_path(path)[0]
    try:
        return None if fs.exists(bucket) else bucket
    except Exception:
        return None  # the caller reports its own error


def backend_errors() -> tuple:
    """What storage calls raise: OSError and friends, plus botocore's own errors once it is loaded."""
    errors: tuple = (OSError, ValueError, TypeError, ImportError)  # TypeError: an option the backend rejects
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        errors += (botocore.BotoCoreError, botocore.ClientError)
    return errors


def bucket_error(what: str, bucket: str) -> StorageError:
    return StorageError(f"{what}: bucket {bucket!r} does not exist, or these credentials cannot see it; "
                        f"check the bucket name and the endpoint (--endpoint-url or AWS_ENDPOINT_URL)")


def storage_error(exc: BaseException, what: str, fs=None, path: str = "") -> StorageError:
    """One paragraph saying what failed on `what` (e.g. "input path 's3://b/x'") and what to do next."""
    if fs is not None and isinstance(exc, FileNotFoundError):
        bucket = missing_bucket(fs, path)
        if bucket:
            return bucket_error(what, bucket)
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"{what} does not exist")
    if isinstance(exc, PermissionError) and fs is not None and not has_buckets(fs):
        return StorageError(f"{what}: permission denied ({exc.strerror or exc}); check the path and who may write there")
    if isinstance(exc, PermissionError):
        return StorageError(f"{what}: access denied ({exc}); check the credentials (AWS_ACCESS_KEY_ID and "
                            f"AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or --storage-option key=... secret=...) and that "
                            f"they are allowed to use this bucket")
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None and isinstance(exc, botocore.NoCredentialsError):
        return StorageError(f"{what}: no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or "
                            f"AWS_PROFILE, pass --storage-option key=... secret=..., or --storage-option anon=true "
                            f"for a public bucket")
    if botocore is not None and isinstance(exc, botocore.ConnectionError):
        return StorageError(f"{what}: cannot reach the storage endpoint ({exc}) and gave up after retrying; "
                            f"check --endpoint-url (or AWS_ENDPOINT_URL) and that the endpoint is up and "
                            f"reachable from this host")
    return StorageError(f"{what} cannot be used: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def translated(what: str, fs=None, path: str = "") -> Iterator[None]:
    """Storage calls inside raise a StorageError about `what` instead of the backend's own error."""
    try:
        yield
    except backend_errors() as exc:
        raise storage_error(exc, what, fs, path) from None


class RangeReader(io.RawIOBase):
    """A remote file read for one split that ends at byte `end`: ranged reads of up to `block` bytes
    that stop at `end`, then reads of `tail` bytes (doubling) until the reader has its last line.

    The file underneath must fetch exactly what is asked (fsspec's cache_type="none").
    """

    def __init__(self, f, end: int, url: str, block: int, tail: int):
        super().__init__()
        self.f, self.end, self.url, self.block, self.tail = f, end, url, block, tail
        self.pos = 0
        self.buf, self.buf_start = b"", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a split is read from an absolute offset")
        self.pos = offset
        return offset

    def readinto(self, b) -> int:
        i = self.pos - self.buf_start
        if not 0 <= i < len(self.buf):
            if self.pos < self.end:
                size = min(self.block, self.end - self.pos)
            else:
                size, self.tail = self.tail, min(self.tail * 2, self.block)
            with translated(f"input file {self.url!r}"):
                self.f.seek(self.pos)
                self.buf, self.buf_start, i = self.f.read(size), self.pos, 0
        n = min(len(b), len(self.buf) - i)
        b[:n] = self.buf[i:i + n]
        self.pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self.f.close()
        super().close()


def open_range(fs, path: str, end: int):
    """`path` opened for reading a split that ends at byte `end`: a RangeReader on remote stores,
    the plain file where reading ahead costs nothing (local disks)."""
    if isinstance(fs, LocalFiles) or "file" in fs.protocol:
        return fs.open(path, "rb")
    return RangeReader(fs.open(path, "rb", cache_type="none"), end, fs.unstrip_protocol(path), RANGE_BLOCK, RANGE_TAIL)
