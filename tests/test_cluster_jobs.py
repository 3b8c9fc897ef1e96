"""A multi-host cluster runs jobs right: across hosts, with workers joining mid-job, with failing user code.

Scenarios 1, 6 and 7 of the cluster issue; each compares its output byte for byte with a failure-free
run of the same job on an embedded cluster.
"""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import netns
from cluster_env import JOB, Cluster, assert_same_output, manifest, record_time, reference_output, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
STATUS_WAIT = str(Path(__file__).parent / "status_wait.py")
LONG_WAIT = 60.0  # longer than the rest of the job takes, by far


def test_wordcount_across_three_hosts(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        workers = cluster.start_workers(hosts)  # one on the master's host too: as in the failure scenarios, 3 workers
        result = cluster.run_job()
        assert result.returncode == 0, result.stderr
        record_time("1 three hosts", result.stderr)
        assert_same_output(cluster.out, reference)
        job = cluster.job()
        assert job["state"] == "succeeded"
        used = {a["worker"] for a in cluster.attempts(job, "map") + cluster.attempts(job, "reduce")}
        assert used == {cluster.worker_id(w) for w in workers}  # every host took part
        text = cluster.mrengine("status", "--master", cluster.address, "--secret-file", cluster.secret_file, "--tasks")
        assert "workers (3 alive)" in text.stdout and "succeeded: map 10/10 reduce 3/3" in text.stdout, text.stdout
        assert "m00000.0@w" in text.stdout
        cluster.stop(signal.SIGINT)  # Ctrl-C
        assert "left" in cluster.log("master")  # the workers said goodbye


def _ask_status(cluster: Cluster, job_id: str, wait: float) -> subprocess.Popen:
    return cluster.hosts[0].popen([sys.executable, STATUS_WAIT, cluster.address, cluster.secret_file, job_id, str(wait)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _answer(asking: subprocess.Popen) -> dict:
    out, err = asking.communicate(timeout=60)
    assert asking.returncode == 0, err
    return json.loads(out)


def test_worker_joining_mid_job_gets_work_at_once(tmp_path, tmp_path_factory):
    """...and a driver's status request waits while the job runs, and is answered when it ends."""
    reference = reference_output(tmp_path_factory)
    job_file = tmp_path / "submitter-only" / "wc.py"  # the workers run the shipped code, not this file
    job_file.parent.mkdir()
    shutil.copy(JOB, job_file)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master("--driver-grace", 4 * LONG_WAIT)  # a status request may wait a quarter of it
        cluster.start_worker(hosts[1])
        driver = cluster.submit(["hold_map=a.txt"], job=job_file)  # map task 0 holds the only worker
        cluster.held("map")
        job_file.unlink()
        job_id = cluster.job()["id"]
        held = _answer(_ask_status(cluster, job_id, 0.5))
        assert held["state"] == "running" and held["seconds"] >= 0.45, held  # held its half second: the job runs
        until_the_end = _ask_status(cluster, job_id, LONG_WAIT)
        late = cluster.start_worker(hosts[2], slots=2)
        late_id = cluster.worker_id(late)
        wait_for(lambda: any(a["worker"] == late_id for a in cluster.attempts(cluster.job())), 30,
                 "the new worker to get a task while task 0 is still held", interval=0.2)
        assert not (cluster.control / "release").exists()
        cluster.release()
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        answer = _answer(until_the_end)
        assert answer["state"] == "succeeded" and answer["seconds"] < LONG_WAIT, answer  # at the end, not its deadline
        cluster.stop()


def test_workers_rejoin_a_restarted_master(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        address = cluster.start_master()
        workers = cluster.start_workers(hosts[1:])
        old_ids = [cluster.worker_id(w) for w in workers]
        cluster.master.send_signal(signal.SIGTERM)
        assert cluster.master.wait(30) == 0
        assert cluster.start_master(port=address.rsplit(":", 1)[1]) == address
        for w in workers:  # the new master knows none of them: they register anew
            cluster.registrations(w, count=2)
        result = cluster.run_job()
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        alive = {w["id"] for w in cluster.status()["workers"] if w["alive"]}
        assert alive == {cluster.worker_id(w) for w in workers} and len(alive) == 2
        for w in workers:
            assert "does not know this worker" in cluster.log(w.log_name)
        # Ids start again at the new master: the old ids name other workers now, and must not make it drop them.
        assert set(old_ids) == alive and "registers again" not in cluster.log("master")
        cluster.stop()


def test_mapper_raising_on_one_record_fails_after_four_attempts(tmp_path):
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        result = cluster.run_job(["fail_word=Melchizedek"])
        assert result.returncode == 5, result.stderr
        err = result.stderr
        assert "failed on all 4 attempts (on workers w" in err, err
        assert "mapper raised ValueError: refusing to count 'Melchizedek'" in err
        assert "kjv-" in err and "line" in err  # the split and the record
        traceback = err.split("Traceback", 1)[1]
        assert "cluster_wc.py" in traceback and "in mapper" in traceback and "raise ValueError" in traceback
        assert "executor.py" not in traceback and "worker.py" not in traceback  # the user's frames only
        assert not (cluster.out / "_SUCCESS").exists()
        assert not list(cluster.out.glob("part-*")) if cluster.out.exists() else True
        (job,) = [j for j in cluster.status()["jobs"]]
        assert job["state"] == "failed"
        failed = [t for t in job["tasks"] if t["state"] == "failed"]
        assert len(failed) == 1 and failed[0]["failures"] == 4
        assert len({a["worker"] for a in failed[0]["attempts"]}) == 2  # retried on the other worker
        # The cluster is fine afterwards.
        result = cluster.run_job(out=tmp_path / "after")
        assert result.returncode == 0, result.stderr
        cluster.stop()


def test_mapper_failing_once_succeeds_with_counters_counted_once(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        result = cluster.run_job(["fail_once=kjv-poetry-and-prophets.txt"])
        assert result.returncode == 0, result.stderr
        assert (cluster.control / "failed-once").exists()  # the first attempt did fail
        assert_same_output(cluster.out, reference)  # counters included: user's and mrengine's
        counters = {(g, n): v for g, n, v in manifest(cluster.out)["counters"]}
        assert counters["wc", "lines"] == counters["mrengine", "map_input_records"]
        assert f"wc/lines = {counters['wc', 'lines']}" in result.stderr  # what the driver printed
        job = cluster.job()
        assert [a["state"] for a in cluster.attempts(job)].count("failed") == 1
        cluster.stop()


BIG_BROADCAST = """
import os
from mrengine import ctx

def lines(records):
    yield "lines", sum(1 for _ in records) + 0 * len(ctx.broadcast)

def add(key, values):
    yield key, sum(values)

def main(ctx):
    payload = os.urandom(ctx.params["mb"] << 20)  # incompressible: it cannot hide in a smaller frame
    counts = [dict(ctx.map_reduce(ctx.inputs, map_split=lines, reducer=add, broadcast=payload))["lines"]
              for _ in range(ctx.params["rounds"])]
    assert len(set(counts)) == 1, counts
"""


def test_a_jobs_code_and_broadcast_reach_each_worker_and_slot_once(tmp_path):
    """Two rounds of 10 map tasks with an 8 MiB broadcast, on two workers of two slots: the master sends
    each round's job to each worker once (counted on its host's network interface), and a worker to each
    slot process once (counted as bytes the worker writes), not with each of the 11 tasks."""
    job = tmp_path / "big.py"
    job.write_text(BIG_BROADCAST)
    mb = 1 << 20
    with netns.Hosts(3) as hosts:
        if not hosts.isolated:
            pytest.skip("needs network namespaces (root and iproute2) to count one host's traffic")
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        workers = cluster.start_workers(hosts[1:], slots=2)

        def sent() -> int:
            return int(hosts[0].run(["cat", "/sys/class/net/eth0/statistics/tx_bytes"], capture_output=True,
                                    text=True, timeout=10).stdout)

        before = sent()
        result = cluster.finish(cluster.submit(["mb=8", "rounds=2"], job=job))
        assert result.returncode == 0, result.stderr
        assert "rounds: 2 (20 map, 2 reduce tasks" in result.stderr
        master_sent = sent() - before
        worker_writes = [psutil.Process(w.pid).io_counters().write_chars for w in workers]
        cluster.stop()
    assert 2 * 2 * 8 * mb < master_sent < (2 * 2 + 1) * 8 * mb  # 2 rounds x 2 workers (it was 22 x 8 MiB)
    assert all(w < (2 * 2 + 1) * 8 * mb for w in worker_writes)  # 2 rounds x at most 2 slots
