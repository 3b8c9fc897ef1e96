"""A test-only fsspec filesystem: the local disk under `slow://`, every write, move and removal taking
SLOW_STORE_SECONDS (as S3 copies with retries can). Registered through the entry point beside it, so
any process with this directory on PYTHONPATH (a master, a worker, a driver) can use it."""

import os
import time

from fsspec.implementations.local import LocalFileSystem


def _pause() -> None:
    time.sleep(float(os.environ.get("SLOW_STORE_SECONDS", "2")))


class SlowFileSystem(LocalFileSystem):
    protocol = "slow"

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("slow://"):] if isinstance(path, str) and path.startswith("slow://") else path
        return super()._strip_protocol(path)

    def mv(self, *args, **kwargs):
        _pause()
        return super().mv(*args, **kwargs)

    def rm(self, *args, **kwargs):
        _pause()
        return super().rm(*args, **kwargs)

    def _open(self, path, mode="rb", *args, **kwargs):
        if "w" in mode:
            _pause()
        return super()._open(path, mode, *args, **kwargs)
