"""`LocalFiles` answers as fsspec's LocalFileSystem does, and a local job's processes never import fsspec."""

import subprocess
import sys

import pytest
from fsspec.implementations.local import LocalFileSystem

from mrengine.localfiles import LocalFiles


@pytest.fixture
def tree(tmp_path):
    for name in ["a.txt", "b.log", ".hidden", "_SUCCESS", "sub/c.txt", "sub/deeper/d.txt", "sub/.e.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name * 3)
    return str(tmp_path)


def _shape(found: dict) -> dict:
    return {path: (info["type"], info["size"]) for path, info in found.items()}


@pytest.mark.parametrize("pattern", ["*", "*.txt", "sub/*", "**/*.txt", "s?b/*.txt", "[ab].*", "nothing*"])
def test_glob_matches_what_fsspec_matches(tree, pattern):
    ours = LocalFiles().glob(f"{tree}/{pattern}", detail=True)
    theirs = LocalFileSystem().glob(f"{tree}/{pattern}", detail=True)
    assert _shape(ours) == _shape(theirs)


def test_find_info_and_ls_match_fsspec(tree):
    ours, theirs = LocalFiles(), LocalFileSystem()
    assert _shape(ours.find(tree, detail=True)) == _shape(theirs.find(tree, detail=True))
    assert ours.find(f"{tree}/a.txt") == theirs.find(f"{tree}/a.txt")
    assert sorted(ours.ls(tree)) == sorted(theirs.ls(tree))
    for path in [tree, f"{tree}/a.txt"]:
        mine, fsspec_info = ours.info(path), theirs.info(path)
        assert {k: mine[k] for k in ("name", "size", "type", "ino", "mtime")} == \
            {k: fsspec_info[k] for k in ("name", "size", "type", "ino", "mtime")}
    assert ours._parent(f"{tree}/sub/c.txt") == theirs._parent(f"{tree}/sub/c.txt")
    assert ours.unstrip_protocol(f"{tree}/a.txt") == theirs.unstrip_protocol(f"{tree}/a.txt")
    with pytest.raises(FileNotFoundError):
        ours.info(f"{tree}/missing")


def test_a_local_job_s_processes_leave_fsspec_unimported():
    # What the driver imports before forking its master and workers, and what the driver runs a job with.
    code = ("import sys, mrengine.cli, mrengine.cluster, mrengine.driver, mrengine.job, mrengine.executor; "
            "from mrengine.cluster import _PROGRAM_MODULES; import importlib; "
            "[importlib.import_module(m) for m in _PROGRAM_MODULES]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 'asyncio')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
