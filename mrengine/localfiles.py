"""The local disk, with the calls `storage`'s callers make, answered as fsspec's LocalFileSystem
answers them, but without importing fsspec: its import (asyncio and all) is a tenth of a second at
the start of every driver, master and worker, most of a small local job's time.

Paths are absolute POSIX paths, or `file://` URLs of them. A compressed file is read through
fsspec's codecs, imported then.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat

PROTOCOL = "file://"


def is_local(url: str) -> bool:
    """A plain path or a file:// URL (not a chained URL such as simplecache::file://...)."""
    return "://" not in url or (url.startswith(PROTOCOL) and "::" not in url)


def local_path(url: str) -> str:
    path = url[len(PROTOCOL):] if url.startswith(PROTOCOL) else url
    return path.rstrip("/") or "/"


class LocalFiles:
    """What mrengine asks of a filesystem, on the local disk; `storage.filesystem` hands it out."""

    def open(self, path: str, mode: str = "rb", compression: str | None = None, encoding: str = "utf-8",
             newline: str | None = None, **_read_ahead):
        # (`_read_ahead`: fsspec's block_size and cache_type, which mean nothing to a local file)
        if compression:
            from fsspec.compression import compr  # (a codec's reader: rare enough to import fsspec for)

            if compression not in compr:
                raise ValueError(f"compression {compression!r} is not available; install its codec")
            return compr[compression](open(path, "rb"), mode="rb")
        if "b" in mode:
            return open(path, mode)
        return open(path, mode, encoding=encoding, newline=newline)

    def info(self, path: str) -> dict:
        st = os.stat(path)
        kind = "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        return {"name": path, "size": st.st_size, "type": kind, "ino": st.st_ino, "mtime": st.st_mtime}

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def ls(self, path: str, detail: bool = False) -> list:
        if not os.path.isdir(path):
            return [self.info(path) if detail else self.info(path)["name"]]
        names = [os.path.join(path, name) for name in os.listdir(path)]
        return [self.info(name) for name in names] if detail else names

    def find(self, path: str, detail: bool = False):
        """Every file below `path` (or `path` itself, a file), by path."""
        if not os.path.isdir(path):
            found = [path] if os.path.exists(path) else []
        else:
            found = [os.path.join(top, name) for top, _, files in os.walk(path) for name in files]
        found.sort()
        return {p: self.info(p) for p in found} if detail else found

    def glob(self, pattern: str, detail: bool = False):
        """The paths `pattern` matches: `*` within a name, `**` across directories; hidden names too."""
        found = sorted(glob.glob(pattern, recursive=True, include_hidden=True))
        return {p: self.info(p) for p in found} if detail else found

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def rm(self, path: str, recursive: bool = False) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            if not recursive:
                raise IsADirectoryError(path)
            shutil.rmtree(path)
        else:
            os.remove(path)

    def rm_file(self, path: str) -> None:
        os.remove(path)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def mv(self, src: str, dst: str) -> None:
        shutil.move(src, dst)

    def cp_file(self, src: str, dst: str) -> None:
        shutil.copyfile(src, dst)

    def pipe_file(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    def cat_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    @staticmethod
    def _parent(path: str) -> str:
        return path.rstrip("/").rsplit("/", 1)[0] or "/"

    @staticmethod
    def unstrip_protocol(path: str) -> str:
        return PROTOCOL + path
