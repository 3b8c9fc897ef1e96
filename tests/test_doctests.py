"""The examples in docstrings run, so they cannot drift from the code."""

import doctest
import importlib

import pytest

from conftest import REPO

# Modules whose docstrings hold examples (`python -m pytest --doctest-modules` would import
# mrengine.__main__ and trip over the `ctx` proxy's attribute lookups).
MODULES = ["mrengine.job", "mrengine.master", "mrengine.messages", "mrengine.serde", "mrengine.shuffle.kept", "mrengine.shuffle.partition",
           "mrengine.sorting", "mrengine.steps", "mrengine.streaming", "mrengine.mrjob.compat", "mrengine.testing"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(REPO)  # examples name files as the README does, from the repository's root
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
