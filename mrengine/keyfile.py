"""The secret of a master started without --secret-file: random, in a file only its user can read.

It lives in the user's runtime directory ($XDG_RUNTIME_DIR/mrengine, else
$XDG_STATE_HOME/mrengine, else ~/.local/state/mrengine), named after the address the master binds,
so that workers and drivers on the same host can be pointed at it.
"""

from __future__ import annotations

import os
import secrets


def secret_dir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("XDG_STATE_HOME") or \
        os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mrengine")


def create(host: str, port: int) -> tuple[str, bytes]:
    """A fresh secret written to a new mode-0600 file; returns (path, secret)."""
    directory = secret_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    name = f"master-{host}-{port}.secret" if port else f"master-{host}-pid{os.getpid()}.secret"
    path = os.path.join(directory, name)
    secret = secrets.token_hex(32).encode()  # as `read_secret` reads it back
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as f:
        f.write(secret + b"\n")
    os.replace(tmp, path)  # a master before it at the same address leaves a stale file: replace it
    return path, secret
