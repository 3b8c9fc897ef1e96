"""Test modules run longest first (a pytest plugin of the suite's own).

xdist's `--dist loadfile` hands each process a whole module at a time, in collection order; it would
otherwise put the modules with the most tests first, and the Spark and cluster modules, which have
few tests and run longest, would come last, and the run would end waiting on one of them. Longest
first leaves the short modules for the end, where they even out the processes' finishing times. The seconds are each module's summed test
durations from one whole run, recorded with `pytest --record-module-seconds`; a module not yet in
the record runs after those that are.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "module_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--record-module-seconds", action="store_true",
                     help=f"write each test module's summed test durations to {os.path.basename(RECORD)}, "
                          "the order the next runs take the modules in")


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    try:
        with open(RECORD, encoding="utf-8") as f:
            seconds = json.load(f)
    except FileNotFoundError:
        return
    items.sort(key=lambda item: -seconds.get(module_of(item.nodeid), 0.0))  # stable: a module's own order kept


class _Recorder:
    def __init__(self):
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report):  # the xdist controller gets every process's reports
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session):
        with open(RECORD, "w", encoding="utf-8") as f:
            json.dump({m: round(s, 1) for m, s in self.seconds.most_common()}, f, indent=1)
            f.write("\n")


def pytest_configure(config):
    # In the xdist controller (or a run without xdist), which gets every process's reports.
    if config.getoption("--record-module-seconds") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "module-seconds-recorder")
