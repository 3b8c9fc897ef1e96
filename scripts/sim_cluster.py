"""Measure a real `mrengine master` under a simulated cluster: many workers, no user code.

    python scripts/sim_cluster.py --tasks 10000 --workers 100 [--reducers 10] [--task-seconds 0.5]

starts `mrengine master` as its own process and W simulated workers (threads, spread over a few
processes) that speak the real protocol: they register, heartbeat, take attempts, and report each one
finished after a drawn duration (uniform in [0.5, 1.5] × --task-seconds). A map's output is only
metadata (a segment of 100 bytes and 1 record per reducer, so every reduce is told to fetch from every
map; nothing is fetched); a reduce writes an empty part file in its attempt's place,
so the master's commit and `_SUCCESS` are the real ones. The job has --tasks map tasks (one split each,
of a generated input file) and --reducers reduce tasks.

The last line printed is one JSON object:

- `master_cpu_ms_per_task`, `master_cpu_us_per_heartbeat`: the master process's CPU time (user +
  system, from /proc) from submit to the job's end, over its tasks (maps + reduces) and over the
  heartbeats the workers sent meanwhile;
- `master_kb_per_task`: the master's peak resident memory (VmHWM) during the job above its resident
  memory before the submit, over its tasks;
- `heartbeat_p50_ms`, `heartbeat_p99_ms`: heartbeat round trips, as the workers timed them, leaving
  out those the master answered after long-polling for work (it holds those on purpose);
- `submit_s` (the submit's round trip: the master lists the input and cuts the splits), `wall_s`
  (submit to `_SUCCESS`), `ideal_s` (the drawn durations packed perfectly onto the slots) and
  `schedule_overhead_s` = wall − ideal: the time the whole job lost to scheduling.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from mrengine import comm, outputs
from mrengine.messages import (
    AttemptReport, Heartbeat, JobStatusRequest, MapOutput, PartOutput, Register, Registered, Reregister, StepSpec,
    Submit, Submitted, from_wire, to_wire,
)
from mrengine.procutil import die_with_parent
from mrengine.tasks import MAP
from mrengine.worker import HeldSources

LINE = b"x" * 15 + b"\n"  # one split per line: the split size is len(LINE)
POLL_SECONDS = 0.5  # the driver's status polls, as `mrengine run` makes them


# ---------------------------------------------------------------- one simulated worker


class SimWorker:
    """One worker's heartbeat loop, as `worker.Worker` runs it, with attempts that only take time."""

    def __init__(self, address: str, secret: bytes, slots: int, task_seconds: float, seed: int):
        self.address, self.secret, self.slots = address, secret, slots
        self.task_seconds = task_seconds
        self.random = random.Random(seed)
        self.running: dict[str, tuple[float, object]] = {}  # attempt id -> (when it finishes, its TaskSpec)
        self.rtts: list[float] = []  # heartbeats the master answered without long-polling
        self.heartbeats = 0
        self.busy_seconds = 0.0

    def register(self) -> None:
        self.conn = comm.connect(self.address, self.secret, timeout=120)
        port = 10000 + self.random.randrange(50000)  # never fetched from: map outputs are metadata
        msg = Register(socket.gethostname(), f"127.0.0.1:{port}", self.slots, os.getpid())
        reply: Registered = from_wire(self.conn.request(to_wire(msg)))
        self.worker_id, self.master = reply.worker_id, reply.master

    def run(self, measuring: threading.Event, stop: threading.Event) -> None:
        jobs: set[str] = set()
        sources = HeldSources()  # as a worker holds its reduces' map sources, and checks them
        while not stop.is_set():
            now = time.monotonic()
            done = [a for a, (end, _) in self.running.items() if end <= now]
            reports = [self._finish(self.running.pop(a)[1]) for a in done]
            refs = [task.ref for _, task in self.running.values()]
            beat = Heartbeat(self.worker_id, self.master, self.slots - len(self.running), refs, reports, sorted(jobs),
                             sources.generations())
            sent = time.monotonic()
            reply = from_wire(self.conn.request(to_wire(beat)))
            took = time.monotonic() - sent
            if isinstance(reply, Reregister):
                raise RuntimeError(f"the master dropped simulated worker {self.worker_id}: is it overloaded?")
            if measuring.is_set():
                self.heartbeats += 1
                if not reply.polled:
                    self.rtts.append(took)
            jobs.update(reply.jobs)
            jobs.difference_update(reply.forget)
            sources.update(reply.sources)
            for job_id in reply.forget:
                sources.forget(job_id)
            for ref in reply.cancel:
                self.running.pop(ref.attempt_id, None)
            for task in filter(sources.resolve, reply.assign):
                seconds = self.task_seconds * self.random.uniform(0.5, 1.5)
                self.busy_seconds += seconds
                self.running[task.attempt_id] = (time.monotonic() + seconds, task)
            if self.running:
                next_end = min(end for end, _ in self.running.values())
                stop.wait(max(0.0, min(next_end - time.monotonic(), reply.heartbeat_seconds)))
            elif not reply.assign:
                stop.wait(0.01 if reply.polled or reports else reply.heartbeat_seconds)

    @staticmethod
    def _finish(task) -> AttemptReport:
        report = AttemptReport(task.job_id, task.attempt_id)
        if task.kind == MAP:
            report.map_output = MapOutput([100] * task.num_partitions, [1] * task.num_partitions, [])
        else:
            path = outputs.attempt_path(task.output, task.job_id, task.attempt_id, task.index)
            report.part = PartOutput(**outputs.write_pairs(path, task.output_format, [], task.storage_options),
                                     counters=[])
        return report


def run_workers(count: int, first_seed: int, address: str, secret: bytes, slots: int, task_seconds: float,
                events, results) -> None:
    """A process of `count` simulated workers, one thread each; their figures go to `results`."""
    registered, measuring, stop = events
    workers = [SimWorker(address, secret, slots, task_seconds, first_seed + i) for i in range(count)]
    for w in workers:
        w.register()
    results.put(("registered", count))
    local_measuring, local_stop = threading.Event(), threading.Event()
    threads = [threading.Thread(target=w.run, args=(local_measuring, local_stop), daemon=True) for w in workers]
    for t in threads:
        t.start()
    measuring.wait()
    local_measuring.set()
    stop.wait()
    local_stop.set()
    for t in threads:
        t.join(5)
    cpu = os.times()
    results.put(("figures", [r for w in workers for r in w.rtts], sum(w.heartbeats for w in workers),
                 sum(w.busy_seconds for w in workers), cpu.user + cpu.system))


# ---------------------------------------------------------------- the master process


def start_master(tmp: str, secret_file: str) -> tuple[subprocess.Popen, str]:
    ready = os.path.join(tmp, "master.address")
    log = open(os.path.join(tmp, "master.log"), "wb")
    # The driver is this process, so it cannot go away: a saturated master, slow to read its status
    # requests, must not cancel the job for them (--driver-grace).
    proc = subprocess.Popen([sys.executable, "-m", "mrengine", "master", "--bind", "127.0.0.1:0", "--secret-file",
                             secret_file, "--ready-file", ready, "--worker-timeout", "60", "--backup-after", "0",
                             "--driver-grace", "3600"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: die_with_parent(signal.SIGTERM))  # a killed run leaves no master
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the master did not start; its log: {os.path.join(tmp, 'master.log')}")
        time.sleep(0.05)
    with open(ready) as f:
        return proc, f.read().strip()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def step_spec(input_path: str, output: str, reducers: int) -> StepSpec:
    return StepSpec(job_bytes=b"simulated: never unpickled", job_name="sim", step=0, inputs=[input_path],
                    input_format="text", splittable=True, output=output, output_format="text",
                    num_reducers=reducers, split_size=len(LINE), params={}, storage_options={},
                    sort_buffer_bytes=1 << 20, max_attempts=4)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (values or [0])[0]


def simulate(tasks: int, workers: int, reducers: int, slots: int, task_seconds: float, procs: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="mrengine-sim-")
    secret_file = os.path.join(tmp, "secret")
    secret = secrets.token_hex(32).encode()
    with open(secret_file, "wb") as f:
        f.write(secret)
    input_path = os.path.join(tmp, "input.txt")
    with open(input_path, "wb") as f:
        f.write(LINE * tasks)
    master, address = start_master(tmp, secret_file)
    mp = multiprocessing.get_context("fork")
    events = (mp.Event(), mp.Event(), mp.Event())
    results = mp.Queue()
    shares = [workers // procs + (i < workers % procs) for i in range(procs)]
    children = [mp.Process(target=run_workers, args=(n, sum(shares[:i]), address, secret, slots, task_seconds, events,
                                                     results), daemon=True) for i, n in enumerate(shares) if n]
    try:
        for child in children:
            child.start()
        for _ in children:
            results.get(timeout=300)
        conn = comm.connect(address, secret, timeout=600)
        time.sleep(1.0)  # the workers' first (long-polling) heartbeats settle
        rss_before, cpu_before = memory_kb(master.pid, "VmRSS"), cpu_seconds(master.pid)
        events[1].set()
        started = time.monotonic()
        submitted: Submitted = from_wire(conn.request(to_wire(Submit(step_spec(input_path, os.path.join(tmp, "out"),
                                                                               reducers)))))
        submit_s = time.monotonic() - started
        while True:
            status = from_wire(conn.request(to_wire(JobStatusRequest(submitted.job_id))))
            if status.state != "running":
                break
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - started
        cpu = cpu_seconds(master.pid) - cpu_before
        peak_kb = memory_kb(master.pid, "VmHWM") - rss_before
        events[2].set()
        figures = [results.get(timeout=60) for _ in children]
        conn.close()
    finally:
        master.terminate()
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()  # stopping thousands of connection threads can take a saturated master long
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
    if status.state != "succeeded":
        raise SystemExit(f"the simulated job {status.state}: {status.error}; master log in {tmp}")
    shutil.rmtree(tmp, ignore_errors=True)
    rtts = sorted(r for f in figures for r in f[1])
    heartbeats = sum(f[2] for f in figures)
    ideal = sum(f[3] for f in figures) / (workers * slots)
    total = submitted.maps + submitted.reduces
    return {
        "tasks": total, "maps": submitted.maps, "reduces": submitted.reduces, "workers": workers, "slots": slots,
        "task_seconds": task_seconds, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
        "schedule_overhead_s": round(wall - ideal, 2), "submit_s": round(submit_s, 3),
        "master_cpu_s": round(cpu, 2), "master_cpu_ms_per_task": round(1000 * cpu / total, 3),
        "master_cpu_us_per_heartbeat": round(1e6 * cpu / max(heartbeats, 1), 1), "heartbeats": heartbeats,
        "master_kb_per_task": round(max(peak_kb, 0) / total, 2),
        "heartbeat_p50_ms": round(1000 * percentile(rtts, 50), 2),
        "heartbeat_p99_ms": round(1000 * percentile(rtts, 99), 2),
        "sim_cpu_s": round(sum(f[4] for f in figures), 2), "load_avg": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, required=True, help="map tasks of the simulated job")
    parser.add_argument("--workers", type=int, required=True, help="simulated workers")
    parser.add_argument("--reducers", type=int, default=10, help="reduce tasks (default 10)")
    parser.add_argument("--slots", type=int, default=1, help="slots per worker (default 1)")
    parser.add_argument("--task-seconds", type=float, default=0.5, help="mean attempt duration (default 0.5)")
    parser.add_argument("--procs", type=int, default=2, help="processes the simulated workers are spread over")
    args = parser.parse_args()
    if args.tasks < 1 or args.workers < 1 or args.reducers < 0 or args.slots < 1 or args.procs < 1:
        parser.error("--tasks, --workers, --slots and --procs must be at least 1, --reducers at least 0")
    print(json.dumps(simulate(args.tasks, args.workers, args.reducers, args.slots, args.task_seconds, args.procs)))


if __name__ == "__main__":
    main()
