"""Tiny stand-ins for the standard modules Python 3.12/3.13 removed and mrjob 0.7.4 still imports.

mrjob imports `pipes` (for `pipes.quote`) and `distutils.spawn.find_executable` and
`distutils.version.LooseVersion`; nothing else of them. `install()` adds these names — and only
where the real module cannot be imported — before the real mrjob package is imported, so mrjob's own
code runs as released.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import sys
import types


class LooseVersion:
    """distutils' LooseVersion: a version compared by its numbers and words, in order.

    >>> LooseVersion("2.7.1") < LooseVersion("2.10") and LooseVersion("3.0") == LooseVersion("3.0")
    True
    """

    def __init__(self, vstring: str | None = None):
        if vstring is not None:
            self.parse(vstring)

    def parse(self, vstring: str) -> None:
        self.vstring = vstring
        parts = [p for p in re.split(r"(\d+|[a-z]+|\.)", vstring) if p and p != "."]
        self.version = [int(p) if p.isdigit() else p for p in parts]

    def _cmp_key(self, other):
        return other if isinstance(other, LooseVersion) else LooseVersion(str(other))

    def __eq__(self, other):
        return self.version == self._cmp_key(other).version

    def __lt__(self, other):
        return self.version < self._cmp_key(other).version

    def __le__(self, other):
        return self.version <= self._cmp_key(other).version

    def __gt__(self, other):
        return self.version > self._cmp_key(other).version

    def __ge__(self, other):
        return self.version >= self._cmp_key(other).version

    def __str__(self):
        return self.vstring

    def __repr__(self):
        return f"LooseVersion({self.vstring!r})"


def _find_executable(executable: str, path: str | None = None) -> str | None:
    return shutil.which(executable, path=path)


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def install() -> None:
    """Make `import pipes` and `import distutils.spawn/.version` work where Python lacks them."""
    if _missing("pipes"):
        sys.modules["pipes"] = _module("pipes", quote=shlex.quote)
    if _missing("distutils"):
        spawn = _module("distutils.spawn", find_executable=_find_executable)
        version = _module("distutils.version", LooseVersion=LooseVersion)
        package = _module("distutils", spawn=spawn, version=version)
        package.__path__ = []
        sys.modules.update({"distutils": package, "distutils.spawn": spawn, "distutils.version": version})


def _module(name: str, **names) -> types.ModuleType:
    module = types.ModuleType(name, f"mrengine's stand-in for the removed standard module {name}, for mrjob")
    module.__dict__.update(names)
    return module
