#!/usr/bin/env python3
"""Wall times of the cluster failure scenarios, against a run without failures.

    python scripts/failure_times.py [--runs 3]

Runs the scenario tests of tests/test_cluster_*.py (real processes on network namespaces when run
as root, else on loopback addresses) and prints, for each scenario, the job's wall time as its
driver reports it (from submission to `_SUCCESS`), the median over the runs:

    0  the same job on an embedded cluster on one host, no failure
    1  wordcount across three hosts (master + 3 workers), no failure
    2  kill -9 of a worker mid-map                      (3 workers, worker timeout 2 s)
    3  kill -9 of a worker while reducers fetch         (3 workers, worker timeout 8 s)
    4  a straggler frozen with SIGSTOP, overtaken by a backup attempt (backup after 1 s)
    5  a host's link cut mid-job                        (3 workers, worker timeout 2 s)

The job: tests/jobs/cluster_wc.py (word count) over the 4.3 MB of sample books, 10 map tasks of at most
512 KiB, 3 reduce tasks; 3 workers of one slot each in every scenario, all on this one machine.
Scenarios 2-5 include the time the test takes to notice the moment to strike (a marker file), usually
milliseconds, and the worker timeout where a death must be noticed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/test_cluster_jobs.py::test_wordcount_across_three_hosts",
    "tests/test_cluster_failures.py::test_worker_killed_mid_map",
    "tests/test_cluster_failures.py::test_worker_killed_after_maps_while_reducers_fetch",
    "tests/test_cluster_stragglers.py::test_stopped_worker_is_overtaken_by_a_backup_attempt",
    "tests/test_cluster_failures.py::test_link_cut_mid_job",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (the median is shown)")
    args = parser.parse_args()
    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        record = os.path.join(tmp, "times.jsonl")
        env = {**os.environ, "MRENGINE_TIMES": record, "PYTHONPATH": os.pathsep.join(
            p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)}
        for run in range(args.runs):
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                print(result.stdout[-3000:], file=sys.stderr)
                return 1
        with open(record) as f:
            for line in f:
                entry = json.loads(line)
                times[entry["scenario"]].append(entry["seconds"])
    base = statistics.median(times["1 three hosts"])
    print(f"{'scenario':52} {'seconds':>8} {'x scenario 1':>13}   runs")
    for name in sorted(times):
        median = statistics.median(times[name])
        print(f"{name:52} {median:8.2f} {median / base:13.2f}   {len(times[name])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
