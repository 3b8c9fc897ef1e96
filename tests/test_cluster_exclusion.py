"""Workers that fail through no fault of the job are excluded from it, and the job still gives the exact
result on the others: one whose work dir is full (a tiny tmpfs), and one whose map outputs cannot be
fetched (its shuffle port refused by a routing rule on every host that fetches, as a firewall would)."""

import pytest

import netns
from cluster_env import Cluster, assert_same_output, reference_output, tiny_disk

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def map_attempts_by_task(job: dict) -> dict:
    return {t["index"]: t["attempts"] for t in job["tasks"] if t["kind"] == "map"}


def test_a_worker_whose_work_dir_is_full_is_excluded_and_the_job_succeeds_on_another(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    # A book's map output (tens of KiB) cannot fit; the first worker's --work-dir is worker-0.
    with tiny_disk(tmp_path / "worker-0", "16k") as work, netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        full, roomy = cluster.start_workers([hosts[1], hosts[2]], slots=1)
        full_id = cluster.worker_id(full)
        # One attempt per task: a full disk must not count as the task's failure.
        result = cluster.finish(cluster.submit(options=["--max-attempts", "1"]))
        assert result.returncode == 0, result.stderr + cluster.log("master")
        assert_same_output(cluster.out, reference)
        assert f"  worker excluded: {full_id}: its disk is full: worker " in result.stderr, result.stderr
        assert "ran out of disk space in its work dir " + str(work) in result.stderr
        assert f"worker {full_id} gets no more of its attempts: its disk is full" in cluster.log("master")
        job = cluster.job()
        assert [e.split(":")[0] for e in job["excluded"]] == [full_id]
        # One failed attempt, on the full disk, and none there after it; its task ran again on the other.
        ((task, attempt),) = [(t, a) for t in job["tasks"] for a in t["attempts"] if a["state"] == "failed"]
        assert attempt["worker"] == full_id
        assert (task["attempts"][-1]["worker"], task["attempts"][-1]["state"]) == (cluster.worker_id(roomy), "succeeded")
        assert all(t["failures"] == 0 for t in job["tasks"])  # not charged to the task
        assert all(a["worker"] != full_id for t in job["tasks"] if t["kind"] == "reduce" for a in t["attempts"])
        cluster.stop()


def test_a_worker_whose_map_outputs_cannot_be_fetched_is_excluded_and_its_maps_run_again_elsewhere(
        tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        # Three slots each: the worker reporting the last map takes all three reduces at once, so three
        # fetches from the unreachable worker fail before its outputs are made again elsewhere.
        unreachable, reachable = cluster.start_workers([hosts[1], hosts[2]], slots=3)
        bad, good = cluster.worker_id(unreachable), cluster.worker_id(reachable)
        (shuffle,) = [w["shuffle"] for w in cluster.status()["workers"] if w["id"] == bad]
        ip, port = shuffle.rsplit(":", 1)
        for host in (hosts[1], hosts[2]):  # its own reducers too: only heartbeats still get through
            host.refuse(ip, int(port))
        result = cluster.run_job()
        assert result.returncode == 0, result.stderr + cluster.log("master")
        assert_same_output(cluster.out, reference)
        excluded = f"{bad}: its map outputs could not be fetched 3 times"
        assert f"  worker excluded: {excluded}" in result.stderr, result.stderr
        job = cluster.job()
        assert job["excluded"] == [excluded]
        served = {i: tries for i, tries in map_attempts_by_task(job).items()
                  if any(a["worker"] == bad and a["state"] == "succeeded" for a in tries)}
        assert served, "the unreachable worker ran no map"
        for tries in served.values():  # each of its maps was made again, on the other worker, and that won
            assert tries[-1]["worker"] == good and tries[-1]["state"] == "succeeded", tries
        reduces = [a for t in job["tasks"] if t["kind"] == "reduce" for a in t["attempts"]]
        assert all(a["state"] != "succeeded" or a["worker"] == good for a in reduces), reduces
        cluster.stop()
