"""Stragglers get backup attempts near the end of a phase (scenario 4 of the cluster issue): the first
attempt to finish wins, the other is cancelled, and a cancelled reduce attempt's partial output never
shows in the result."""

import os
import signal

import pytest

import netns
from cluster_env import Cluster, assert_same_output, record_time, reference_output, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def task(job: dict, kind: str, index: int) -> dict:
    (found,) = [t for t in job["tasks"] if (t["kind"], t["index"]) == (kind, index)]
    return found


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stopped_worker_is_overtaken_by_a_backup_attempt(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        # The worker timeout is far longer than the test: only a backup attempt can finish the job.
        cluster = Cluster(hosts, tmp_path, worker_timeout=120, backup_after=1)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        driver = cluster.submit(["hold_map=a.txt"])  # map task 0, the first handed out
        straggler = cluster.proc_of(cluster.held("map")[0])
        straggler_id = cluster.worker_id(straggler)
        os.killpg(straggler.pid, signal.SIGSTOP)  # the worker and its attempt, mid-task
        try:
            cluster.release()
            result = cluster.finish(driver, timeout=90)
            assert result.returncode == 0, result.stderr
            record_time("4 straggler (SIGSTOP)", result.stderr)
            assert_same_output(cluster.out, reference)
            job = cluster.job()
            first, backup = task(job, "map", 0)["attempts"]
            assert (first["worker"], first["state"], first["backup"]) == (straggler_id, "killed", False)
            assert (backup["state"], backup["backup"]) == ("succeeded", True) and backup["worker"] != straggler_id
            assert "has run" in cluster.log("master") and f"backup attempt {backup['id']}" in cluster.log("master")
            assert all(w["alive"] for w in cluster.status()["workers"])  # overtaken, not declared dead
        finally:
            os.killpg(straggler.pid, signal.SIGCONT)
        cluster.stop()


def test_cancelled_reduce_attempt_leaves_no_partial_output(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        cluster = Cluster(hosts, tmp_path, worker_timeout=120, backup_after=1)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        driver = cluster.submit(["stall_reduce=6000"])  # one reduce attempt stalls at its 6000th key
        stalled_path = cluster.control / "stalled.pid"
        stalled = int(wait_for(lambda: stalled_path.exists() and stalled_path.read_text(), 60, "a stalled reducer"))
        # Reduce attempts with output on disk now: the stalled one has written its first thousands of lines.
        partial = {p.parent.name for p in cluster.out.glob("_temporary/*/*/part-*") if p.stat().st_size}
        os.kill(stalled, signal.SIGSTOP)  # frozen mid-write
        try:
            result = cluster.finish(driver, timeout=90)
            assert result.returncode == 0, result.stderr
            job = cluster.job()
            (stalled_task,) = [t for t in job["tasks"] if t["kind"] == "reduce" and len(t["attempts"]) == 2]
            first, backup = stalled_task["attempts"]
            assert first["state"] == "killed" and backup["backup"] and backup["state"] == "succeeded"
            assert first["id"] in partial
            wait_for(lambda: gone(stalled), 30, "the cancelled attempt's process to be killed")
        finally:
            if not gone(stalled):
                os.kill(stalled, signal.SIGCONT)
        assert_same_output(cluster.out, reference)  # no _temporary, no part of the loser's output
        cluster.stop()
