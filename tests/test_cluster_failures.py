"""A multi-host cluster survives dying, vanishing and frozen workers (scenarios 2, 3 and 5 of the
cluster issue, and a worker that comes back after it was declared dead); each output is compared
byte for byte with a failure-free run."""

import os
import signal
import sys

import psutil
import pytest

import netns
from cluster_env import Cluster, assert_same_output, record_time, reference_output, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def map_winners(job: dict) -> dict:
    """map index -> the attempts of that map task."""
    return {t["index"]: t["attempts"] for t in job["tasks"] if t["kind"] == "map"}


def kill_with_its_slots(worker) -> None:
    """kill -9 a worker, and wait for its attempts' processes to die with it (they must not see a release)."""
    slots = psutil.Process(worker.pid).children()
    os.kill(worker.pid, signal.SIGKILL)
    psutil.wait_procs(slots, timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in slots)


def test_worker_killed_mid_map(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        cluster = Cluster(hosts, tmp_path, worker_timeout=2)
        cluster.start_master()
        workers = cluster.start_workers(hosts[1:])
        driver = cluster.submit(["hold_map=kjv-poetry-and-prophets.txt"])  # the last book: others are done by then
        victim = cluster.proc_of(cluster.held("map")[0])
        victim_id = cluster.worker_id(victim)
        kill_with_its_slots(victim)
        cluster.release()
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        record_time("2 kill -9 mid-map", result.stderr)
        assert_same_output(cluster.out, reference)
        assert f"worker {victim_id}" in cluster.log("master") and "declared dead" in cluster.log("master")
        job = cluster.job()
        lost = [a for a in cluster.attempts(job) if a["worker"] == victim_id and a["state"] == "killed"]
        assert lost, "the attempt running on the killed worker was not rescheduled"
        assert all(a["worker"] != victim_id for a in cluster.attempts(job, "reduce"))
        assert victim.wait(10) == -signal.SIGKILL
        cluster.workers = [w for w in workers if w is not victim]
        cluster.stop()


def test_worker_killed_after_maps_while_reducers_fetch(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        # A timeout long enough that the reducer which fetches after the kill meets the dead worker
        # before the master gives it up: the fetch failure alone must bring its outputs back.
        cluster = Cluster(hosts, tmp_path, worker_timeout=8)
        cluster.start_master()
        workers = cluster.start_workers(hosts[1:])
        # Every reducer holds after fetching; one fails once after the release, and its retry fetches anew.
        driver = cluster.submit(["hold_reduce=1", "fail_reduce_once=1"])
        held = cluster.held("reduce", count=3)
        job = cluster.job()
        assert job["counts"]["maps_done"] == job["counts"]["maps"]

        def made_on(proc):
            wid = cluster.worker_id(proc)
            return {i for i, attempts in map_winners(job).items()
                    if any(a["worker"] == wid and a["state"] == "succeeded" for a in attempts)}

        victim = max((cluster.proc_of(pid) for pid in held), key=lambda proc: len(made_on(proc)))
        victim_id, made_there = cluster.worker_id(victim), made_on(victim)
        assert made_there, "the victim holds no map output; the test would prove nothing"
        kill_with_its_slots(victim)
        cluster.release()
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        record_time("3 kill -9 while reducers fetch", result.stderr)
        assert_same_output(cluster.out, reference)
        master_log = cluster.log("master")
        assert "could not fetch its input" in master_log, master_log
        # The maps made again are a new generation of the reduces' map sources, which went to the worker of the
        # retried reduce beside it, though that worker held the first: no reduce was turned away for lack of it.
        assert "not starting" not in "".join(cluster.log(f"worker-{i}") for i in range(len(workers)))
        job = cluster.job()
        for i in made_there:  # made again elsewhere, and the new output is the one used
            attempts = map_winners(job)[i]
            assert attempts[0]["worker"] == victim_id and attempts[-1]["worker"] != victim_id
            assert attempts[-1]["state"] == "succeeded"
        reduce_attempts = cluster.attempts(job, "reduce")
        assert any(a["state"] == "failed" for a in reduce_attempts)  # the planted failure
        assert sum(a["state"] == "killed" for a in reduce_attempts) >= 2  # on the victim, and the fetch that failed
        cluster.workers = [w for w in workers if w is not victim]
        cluster.stop()


def test_link_cut_mid_job(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        if not hosts.isolated:
            pytest.skip("cutting a link needs network namespaces")
        cluster = Cluster(hosts, tmp_path, worker_timeout=2)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        driver = cluster.submit(["hold_map=kjv-poetry-and-prophets.txt"])
        cut = cluster.proc_of(cluster.held("map")[0])
        cut_id = cluster.worker_id(cut)
        cut.host.link_down()
        cluster.release()  # the cut-off attempt goes on, but its news cannot reach the master
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        record_time("5 link cut mid-job", result.stderr)
        assert_same_output(cluster.out, reference)
        assert f"worker {cut_id} " in cluster.log("master") and "declared dead" in cluster.log("master")
        cut.host.link_up()
        new_id = cluster.registrations(cut, count=2)[-1]  # back, as a new worker without its old outputs
        workers = {w["id"]: w for w in cluster.status()["workers"]}
        assert not workers[cut_id]["alive"] and workers[new_id]["alive"]
        cluster.stop()


FETCH = """
import sys
from mrengine.shuffle.fetch import fetch_segment
from mrengine.errors import FetchFailedError
address, secret_file, job_id, attempt_id = sys.argv[1:5]
secret = open(secret_file, "rb").read().strip()
try:
    fetch_segment(address, secret, job_id, attempt_id, 0, 0, open("/dev/null", "wb"), timeout=10)
    print("served")
except FetchFailedError as exc:
    print("refused:", exc)
"""


def test_worker_declared_dead_comes_back_without_its_outputs(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        cluster = Cluster(hosts, tmp_path, worker_timeout=2)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        driver = cluster.submit(["hold_reduce=1"])
        held = cluster.held("reduce", count=3)
        frozen = cluster.proc_of(held[0])
        frozen_id = cluster.worker_id(frozen)
        job = cluster.job()
        outputs = [a["id"] for a in cluster.attempts(job) if a["worker"] == frozen_id and a["state"] == "succeeded"]
        assert outputs
        shuffle = {w["id"]: w["shuffle"] for w in cluster.status()["workers"]}[frozen_id]

        def fetch(attempt_id):
            return cluster.hosts[0].run([sys.executable, "-c", FETCH, shuffle, cluster.secret_file, job["id"], attempt_id],
                                        capture_output=True, text=True, timeout=30).stdout

        assert fetch(outputs[0]) == "served\n"
        os.killpg(frozen.pid, signal.SIGSTOP)  # the worker and its attempts
        try:
            wait_for(lambda: not {w["id"]: w for w in cluster.status()["workers"]}[frozen_id]["alive"], 30,
                     "the frozen worker to be declared dead", interval=0.5)
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
        new_id = cluster.registrations(frozen, count=2)[-1]
        assert new_id != frozen_id
        assert fetch(outputs[0]).startswith("refused: fetching map output")  # not trusted, not served
        cluster.release()
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        job = cluster.job()
        assert all(a["state"] != "succeeded" for a in cluster.attempts(job, "reduce") if a["worker"] == frozen_id)
        for attempts in map_winners(job).values():  # every output in use was made by someone trusted
            assert attempts[-1]["worker"] != frozen_id
        assert f"worker {frozen_id} " in cluster.log("master") and "declared dead" in cluster.log("master")
        assert "does not know this worker" in cluster.log(frozen.log_name)
        cluster.stop()
