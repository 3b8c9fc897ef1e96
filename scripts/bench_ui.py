"""What the web UI costs the master: one job of ~3,000 tasks, with and without someone watching it.

    python scripts/bench_ui.py                  # 3,000 maps (tiny splits) and 2 reducers, 2 workers
    python scripts/bench_ui.py --maps 1000 --poll 0.5

Each case starts a fresh master (`--http` on loopback) and two workers as real processes, runs
jobs/wordcount.py over a file cut into `--maps` splits, and measures the master process alone: its
CPU seconds (user + system) from submit to the job's end, and its peak RSS (VmHWM). In the
`watched` case a client loads the job's page and its /api twin every `--poll` seconds while the job
runs (as a browser tab refreshing would), and the script also prints how long those requests took
and how big they were (the last ones are the biggest: the task table grows with the job). The load
average goes with the table: the machine may be doing other work, so compare the two rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "wordcount.py"
LINE = "the quick brown fox jumps over the lazy dog again\n"  # 50 bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mrengine(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "mrengine", *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                            **kwargs)


def wait_until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("timed out waiting for the cluster")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as reply:
        return reply.read()


class Watcher(threading.Thread):
    """Loads the job page and its /api twin every `period` seconds until stopped; keeps (seconds, bytes) of each."""

    def __init__(self, http: str, period: float):
        super().__init__(daemon=True)
        self.http, self.period = http, period
        self.stopped = threading.Event()
        self.samples: dict[str, list[tuple[float, int]]] = {"page": [], "api": []}

    def run(self) -> None:
        job = wait_until(lambda: json.loads(fetch(self.http + "/api/jobs")))[0]["id"]
        while not self.stopped.wait(self.period):
            for kind, path in (("page", f"/jobs/{job}"), ("api", f"/api/jobs/{job}")):
                start = time.monotonic()
                size = len(fetch(self.http + path))
                self.samples[kind].append((time.monotonic() - start, size))


def run_case(tmp: Path, data: Path, maps: int, watch: bool, poll: float) -> dict:
    secret = tmp / "secret"
    secret.write_text("bench-ui-secret")
    ready = tmp / f"ready-{watch}"
    http = f"127.0.0.1:{free_port()}"
    master = mrengine("master", "--bind", "127.0.0.1:0", "--secret-file", secret, "--ready-file", ready, "--http", http,
                      "--history-dir", tmp / f"history-{watch}", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [master]
    try:
        address = wait_until(lambda: ready.exists() and ready.read_text())
        for i in range(2):
            procs.append(mrengine("worker", "--master", address, "--secret-file", secret, "--work-dir", tmp / f"w{watch}{i}",
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: len(json.loads(fetch(f"http://{http}/api/cluster"))["workers"]) == 2)
        proc = psutil.Process(master.pid)
        cpu_before = sum(proc.cpu_times()[:2])
        watcher = Watcher(f"http://{http}", poll) if watch else None
        start = time.monotonic()
        run = mrengine("run", JOB, data, "-o", tmp / f"out-{watch}", "--master", address, "--secret-file", secret,
                       "--split-size", data.stat().st_size // maps, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if watcher:
            watcher.start()
        _, err = run.communicate()
        wall = time.monotonic() - start
        if watcher:
            watcher.stopped.set()
            watcher.join()
        if run.returncode != 0:
            raise SystemExit(f"the job failed:\n{err.decode()}")
        cpu = sum(proc.cpu_times()[:2]) - cpu_before
        hwm = _vm_hwm(master.pid)
        report = json.loads((tmp / f"out-{watch}" / "_REPORT.json").read_text())
        return {"case": "watched" if watch else "unwatched", "tasks": len(report["tasks"]), "wall": wall,
                "master_cpu": cpu, "master_rss_mb": hwm / 2**20, "watcher": watcher}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _vm_hwm(pid: int) -> int:
    """The process's peak resident set size, in bytes (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


def describe(samples: list[tuple[float, int]]) -> str:
    if not samples:
        return "no requests"
    times = [t for t, _ in samples]
    return (f"{len(samples)} requests, median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
            f"last {samples[-1][1] / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", type=int, default=3000, help="map tasks (the input is cut into this many splits)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between the watcher's page loads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mrengine-bench-ui-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "input.txt"
        data.write_text(LINE * args.maps)
        rows = [run_case(tmp, data, args.maps, watch, args.poll) for watch in (False, True)]
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'case':<10} {'tasks':>6} {'wall s':>7} {'master CPU s':>13} {'master peak RSS MB':>19}")
    for r in rows:
        print(f"{r['case']:<10} {r['tasks']:>6} {r['wall']:>7.1f} {r['master_cpu']:>13.2f} {r['master_rss_mb']:>19.1f}")
    watcher = rows[1]["watcher"]
    print(f"job page:  {describe(watcher.samples['page'])}")
    print(f"/api twin: {describe(watcher.samples['api'])}")


if __name__ == "__main__":
    main()
