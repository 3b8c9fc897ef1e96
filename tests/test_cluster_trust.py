"""A standalone cluster (`mrengine master` + `mrengine worker` processes) stays right under hostile jobs
and careless users: no state of one job reaches the next, helpers travel with the job, a job whose
driver goes away is cancelled without touching its successor's output, relative paths mean the
driver's directory, and stuck, exiting, memory-hungry or disk-filling tasks fail with the real cause.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import netns
from cluster_env import (CMD_TIMEOUT, JOB, JOB_TIMEOUT, MRENGINE, REDUCERS, ROOT, Cluster, assert_same_output,
                         reference_output, tiny_disk, wait_for)
from conftest import JOBS, TEST_JOBS, read_tsv, reference_wordcount

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HOSTILE = Path(TEST_JOBS) / "hostile.py"
GRACE = 2.0  # the master's --driver-grace in these tests


def run(cluster, job, out, *args, cwd=None, inputs=None):
    """`mrengine run JOB INPUT -o OUT --master ...` on hosts[0], to the end."""
    argv = [*MRENGINE, "run", job, *(inputs or [cluster.input]), "-o", out, "--master", cluster.address,
            "--secret-file", cluster.secret_file, "--split-size", "512k", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # from any cwd
    return cluster.hosts[0].run(list(map(str, argv)), capture_output=True, text=True, timeout=JOB_TIMEOUT, cwd=cwd,
                                env=env)


def books_wordcount(cluster):
    return {w: str(n) for w, n in reference_wordcount(sorted(cluster.input.iterdir())).items()}


def test_no_state_survives_from_one_job_to_the_next(tmp_path):
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=2)
        leaky = run(cluster, HOSTILE, tmp_path / "leaky", "-p", "what=patch")
        assert leaky.returncode == 0, leaky.stderr
        assert set(read_tsv(tmp_path / "leaky").values()) == {"PATCHED"}  # it did patch its own processes
        result = run(cluster, Path(JOBS) / "wordcount.py", tmp_path / "wc")
        assert result.returncode == 0, result.stderr
        assert read_tsv(tmp_path / "wc") == books_wordcount(cluster)
        probe = run(cluster, HOSTILE, tmp_path / "probe", "-p", "what=probe")
        assert probe.returncode == 0, probe.stderr
        assert read_tsv(tmp_path / "probe")["leaked"] == "0"  # no environment, cwd, module or patch left
        cluster.stop()


def test_helpers_beside_the_job_travel_with_it_and_edits_count(tmp_path):
    job_dir = tmp_path / "myjob"  # not on the worker's path, not its directory
    job_dir.mkdir()
    (job_dir / "helpers.py").write_text("def tag(word):\n    return word.upper()\n")
    (job_dir / "tagged.py").write_text("from helpers import tag\n\n\ndef mapper(path, line):\n"
                                       "    for word in line.split():\n        yield tag(word), 1\n\n\n"
                                       "def reducer(word, counts):\n    yield word, sum(counts)\n")
    words = tmp_path / "words.txt"
    words.write_text("alpha beta\nbeta\n")
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=1)
        first = run(cluster, job_dir / "tagged.py", tmp_path / "out1", inputs=[words])
        assert first.returncode == 0, first.stderr
        assert read_tsv(tmp_path / "out1") == {"ALPHA": "1", "BETA": "2"}
        (job_dir / "helpers.py").write_text("def tag(word):\n    return word + '!'\n")
        second = run(cluster, job_dir / "tagged.py", tmp_path / "out2", inputs=[words])
        assert second.returncode == 0, second.stderr
        assert read_tsv(tmp_path / "out2") == {"alpha!": "1", "beta!": "2"}
        cluster.stop()


def _job_state(cluster, job_id):
    return next(j["state"] for j in cluster.status()["jobs"] if j["id"] == job_id)


def test_a_job_whose_driver_is_gone_is_cancelled_and_never_touches_its_successor(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master("--driver-grace", GRACE)
        cluster.start_worker(hosts[0], slots=3)
        # 1. The driver is killed while every reduce is held: after the grace period the job is
        # cancelled, its attempts killed and its temporary files removed.
        orphan = cluster.submit(["hold_reduce=1"])
        cluster.held("reduce", count=REDUCERS)
        os.killpg(orphan.pid, signal.SIGKILL)
        orphan.communicate(timeout=CMD_TIMEOUT)
        (first,) = cluster.status()["jobs"]
        wait_for(lambda: _job_state(cluster, first["id"]) == "cancelled", 10 * GRACE, "the orphan to be cancelled")
        wait_for(lambda: not (cluster.out / "_temporary").exists(), 30, "the orphan's temporary files to go")
        assert "its driver has not asked for its status" in cluster.log("master")
        jobs = cluster.mrengine("jobs", "--master", cluster.address, "--secret-file", cluster.secret_file)
        assert f"{first['id']}  cancelled" in jobs.stdout, jobs.stdout
        # 2. The orphan race: a part already committed, the driver killed, the user reruns with
        # --overwrite at once while the orphan's other reduces still run. The new job's result is exact.
        for p in cluster.control.glob("held-*"):
            p.unlink()
        (cluster.control / "release").unlink(missing_ok=True)
        orphan = cluster.submit(["stall_reduce=50"])
        wait_for(lambda: (cluster.control / "stalled.pid").exists() and len(list(cluster.out.glob("part-*"))) >= 1,
                 JOB_TIMEOUT, "one reduce committed while another stalls")
        os.killpg(orphan.pid, signal.SIGKILL)
        orphan.communicate(timeout=CMD_TIMEOUT)
        rerun = cluster.finish(cluster.hosts[0].popen(
            [*MRENGINE, "run", JOB, cluster.input, "-o", cluster.out, "--master", cluster.address, "--secret-file",
             cluster.secret_file, "--reducers", REDUCERS, "--split-size", "512k", "-p", f"control={cluster.control}",
             "--overwrite"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        assert rerun.returncode == 0, rerun.stderr
        cluster.release()
        time.sleep(3 * GRACE)  # long past the orphan's end, whatever it did last
        assert_same_output(cluster.out, reference)
        assert cluster.mrengine("verify", cluster.out).returncode == 0
        cluster.stop()


def test_mrengine_kill_cancels_a_running_job(tmp_path):
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=2)
        driver = cluster.submit(["hold_map=a.txt"])
        cluster.held("map")
        (job,) = cluster.status()["jobs"]
        killed = cluster.mrengine("kill", job["id"], "--master", cluster.address, "--secret-file", cluster.secret_file)
        assert killed.returncode == 0, killed.stderr
        result = cluster.finish(driver, timeout=30)
        assert result.returncode == 7, result.stderr
        assert f"({job['id']}) was cancelled: killed by `mrengine kill`" in result.stderr
        again = cluster.mrengine("kill", job["id"], "--master", cluster.address, "--secret-file", cluster.secret_file)
        assert again.returncode == 2 and f"job {job['id']} is not running: it cancelled" in again.stderr
        cluster.release()
        cluster.stop()


def test_relative_paths_mean_the_drivers_directory(tmp_path):
    client = tmp_path / "client"  # the driver's cwd; the master and worker run elsewhere
    (client / "data").mkdir(parents=True)
    (client / "data" / "words.txt").write_text("one two two\nthree three three\n")
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=2)
        first = run(cluster, Path(JOBS) / "wordcount.py", "out/rel1", "--reducers", "3", cwd=client, inputs=["data"])
        assert first.returncode == 0, first.stderr
        assert f"-> {client / 'out' / 'rel1'}" in first.stderr
        want = {"one": "1", "two": "2", "three": "3"}
        assert read_tsv(client / "out" / "rel1") == want
        second = run(cluster, Path(JOBS) / "wordcount.py", "out/rel1", "--reducers", "1", "--overwrite",
                     cwd=client, inputs=["data/words.txt"])
        assert second.returncode == 0, second.stderr
        assert sorted(p.name for p in (client / "out" / "rel1").iterdir()) == ["_REPORT.json", "_SUCCESS", "part-00000"]
        assert read_tsv(client / "out" / "rel1") == want
        (client / "out" / "rel1" / "part-00007").write_text("stale\tpart\n")
        verify = cluster.mrengine("verify", client / "out" / "rel1")
        assert verify.returncode == 1 and "part-00007 is not in the manifest" in verify.stderr
        cluster.stop()


def test_a_stuck_task_fails_in_bounded_time_while_another_job_completes(tmp_path):
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=2)
        stuck = cluster.hosts[0].popen(list(map(str, [
            *MRENGINE, "run", HOSTILE, cluster.input, "-o", tmp_path / "stuck", "--master", cluster.address,
            "--secret-file", cluster.secret_file, "--split-size", "512k", "-p", "what=loop", "-p", "on=a.txt",
            "--task-timeout", "3", "--max-attempts", "2"])), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        other = run(cluster, Path(JOBS) / "wordcount.py", tmp_path / "wc")
        assert other.returncode == 0, other.stderr
        assert read_tsv(tmp_path / "wc") == books_wordcount(cluster)
        result = cluster.finish(stuck, timeout=90)
        assert time.monotonic() - started < 90
        assert result.returncode == 5, result.stderr
        assert "a.txt" in result.stderr
        # The idle time is the one measured when the task was killed: on busy cores a check may come a second late.
        assert re.search(r"made no progress \(no record read or written\) for \d+s, past the task timeout of 3s",
                         result.stderr), result.stderr
        assert "failed on all 2 attempts" in result.stderr
        cluster.stop()


@pytest.mark.parametrize("what, says", [
    ("exit", "the job's code called sys.exit(3)"),
    ("os_exit", "the job's code ended the task process with exit code 4 (os._exit(4))"),
    ("hog", "past the task memory limit of 100 MiB (--task-memory-mb); killed"),
])
def test_a_task_that_exits_or_hogs_memory_says_so(tmp_path, what, says):
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=2)
        result = run(cluster, HOSTILE, tmp_path / "out", "-p", f"what={what}", "-p", "on=a.txt", "--max-attempts", "1",
                     "--task-memory-mb", "100")
        assert result.returncode == 5, result.stderr
        assert says in result.stderr and "a.txt" in result.stderr, result.stderr
        assert "out of memory?" not in result.stderr
        cluster.stop()


def test_a_full_work_dir_on_the_only_worker_fails_the_job_naming_the_worker_and_its_dir(tmp_path):
    # (Cluster.start_worker points the first worker's --work-dir there.) With the default 4 attempts per
    # task, the job fails at the first full disk: no worker is left that could run anything.
    with tiny_disk(tmp_path / "worker-0", "2m") as work, netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        cluster.start_worker(hosts[0], slots=1)
        result = run(cluster, HOSTILE, tmp_path / "out", "-p", "what=fat", "-p", "on=a.txt")
        assert result.returncode == 5, result.stderr
        assert "could not run: every live worker is out of disk space (w1: worker " in result.stderr, result.stderr
        assert "ran out of disk space in its work dir " + str(work) in result.stderr, result.stderr
        assert "(not an error in the job's code)" in result.stderr
        assert "mapper raised" not in result.stderr and "failed on all" not in result.stderr
        (job,) = cluster.status()["jobs"]
        assert job["counts"]["attempts_failed"] == 1  # not retried on the same full disk
        cluster.stop()
