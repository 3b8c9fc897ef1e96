"""Strangers are refused and bad frames cost only their own connection (scenario 8 of the cluster
issue); fetches name only the worker's own outputs; off-loopback needs a secret; SIGTERM stops a
worker in two stages."""

import json
import signal
import subprocess
import sys

import psutil
import pytest

import netns
from cluster_env import MRENGINE, Cluster, assert_same_output, reference_output, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Run on a third host against the master or a worker's shuffle port; prints what each probe met.
PROBES = r"""
import json, os, socket, sys
from mrengine import comm, protocol
from mrengine.errors import MrEngineError

address, secret_file = sys.argv[1:3]
secret = open(secret_file, "rb").read().strip()
host, port = comm.parse_address(address)
met = {}

def raw(data):
    with socket.create_connection((host, port), timeout=15) as s:
        s.recv(36)  # the server's hello
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        try:
            return "closed" if s.recv(1024) == b"" else "answered"
        except ConnectionResetError:
            return "closed"

def authenticated(data, sealed=False):
    conn = comm.connect(address, secret, timeout=15)
    try:
        conn._send_sealed(data) if sealed else conn.sock.sendall(data)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.recv()
        return "answered"
    except MrEngineError as exc:
        return "closed" if "closed the connection" in str(exc) else str(exc)
    finally:
        conn.close()

try:
    comm.connect(address, b"not the cluster secret").close()
    met["wrong secret"] = "accepted"
except MrEngineError as exc:
    met["wrong secret"] = str(exc)
met["random bytes"] = raw(os.urandom(64))
met["oversize prefix before the handshake"] = raw(b"\xff\xff\xff\xff")
met["oversize prefix"] = authenticated(b"\xff\xff\xff\xff")
met["garbage frame"] = authenticated(b"\xc1\xc1\xc1\xc1", sealed=True)  # 0xc1: never valid msgpack
met["unsealed frame"] = authenticated(protocol.encode({"type": "status"}) + bytes(16))
met["truncated frame"] = authenticated(protocol.HEADER.pack(100) + b"x" * 10)
if sys.argv[3:] == ["fetch"]:
    for job_id, attempt_id, partition in [("..", "../../etc/passwd", 0), ("../..", "etc", 0),
                                          ("job0001", "/etc/passwd", 0), ("x", "y", "0; cat /etc/shadow")]:
        conn = comm.connect(address, secret)
        try:
            conn.request({"type": "fetch", "job_id": job_id, "attempt_id": attempt_id, "partition": partition})
            met[f"fetch {attempt_id}"] = "served"
        except MrEngineError as exc:
            met[f"fetch {attempt_id}"] = str(exc)
        finally:
            conn.close()
print(json.dumps(met))
"""


def probe(cluster, host, address, *extra) -> dict:
    result = host.run([sys.executable, "-c", PROBES, address, cluster.secret_file, *extra],
                      capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_refused(met: dict, log: str, peer_ip: str) -> None:
    assert met["wrong secret"].endswith("refused our credentials: the cluster secret differs (check --secret-file)")
    for name in ("random bytes", "oversize prefix before the handshake", "oversize prefix", "garbage frame", "unsealed frame",
                 "truncated frame"):
        assert met[name] == "closed", (name, met[name])
    refusals = [line for line in log.splitlines() if f"refused connection from {peer_ip}:" in line]
    text = "\n".join(refusals)
    assert text.count("failed authentication (wrong or missing secret)") == 2, text  # wrong secret, random bytes
    assert "did not complete the handshake" in text and "after 4 of 64 bytes" in text
    assert "announced a 4294967295-byte frame, over the limit" in text
    assert "frame does not decode" in text
    assert "failed its integrity check" in text
    assert "after 10 of 116 bytes (truncated)" in text
    assert len(refusals) == 7, text


def test_strangers_and_bad_frames_are_refused_and_the_cluster_goes_on(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(3) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        (worker,) = cluster.start_workers([hosts[1]])
        stranger = hosts[2]
        seen_as = stranger.ip if hosts.isolated else "127.0.0.1"  # loopback clients do not bind their source
        assert_refused(probe(cluster, stranger, cluster.address), cluster.log("master"), seen_as)

        no_secret = stranger.run([*MRENGINE, "status", "--master", cluster.address], capture_output=True, text=True, timeout=30)
        assert no_secret.returncode == 6 and "refused our credentials" in no_secret.stderr, no_secret.stderr
        assert "Traceback" not in no_secret.stderr
        assert cluster.log("master").count("failed authentication (wrong or missing secret)") == 3

        shuffle = {w["pid"]: w["shuffle"] for w in cluster.status()["workers"]}[worker.pid]
        met = probe(cluster, stranger, shuffle, "fetch")
        assert_refused(met, cluster.log(worker.log_name), seen_as)
        for attempt_id in ("../../etc/passwd", "etc", "/etc/passwd", "y"):
            assert met[f"fetch {attempt_id}"] == "no such map output here", met

        result = cluster.run_job()  # everyone else was served all along
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        cluster.stop()


def test_off_loopback_needs_a_secret(tmp_path):
    master = subprocess.run([*MRENGINE, "master", "--bind", "0.0.0.0:0"], capture_output=True, text=True, timeout=30)
    assert master.returncode == 2
    assert "binding 0.0.0.0 (not loopback) needs --secret-file" in master.stderr
    worker = subprocess.run([*MRENGINE, "worker", "--master", "10.213.0.1:7070"], capture_output=True, text=True, timeout=30)
    assert worker.returncode == 2 and "serving map outputs off loopback needs --secret-file" in worker.stderr
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    master = subprocess.run([*MRENGINE, "master", "--bind", "0.0.0.0:0", "--secret-file", empty],
                            capture_output=True, text=True, timeout=30)
    assert master.returncode == 2 and "is empty" in master.stderr
    helptext = subprocess.run([*MRENGINE, "master", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "[default: 127.0.0.1:7070]" in helptext


def test_sigterm_finishes_running_attempts_and_a_second_one_kills_them(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    with netns.Hosts(4) as hosts:
        cluster = Cluster(hosts, tmp_path, worker_timeout=2)
        cluster.start_master()
        cluster.start_workers(hosts[1:])
        driver = cluster.submit(["hold_map=kjv-new-testament.txt"])  # a book of several splits
        gentle, hard = (cluster.proc_of(pid) for pid in cluster.held("map", count=2))
        gentle_id = cluster.worker_id(gentle)
        slots = [p.pid for p in psutil.Process(hard.pid).children()]
        assert slots
        gentle.send_signal(signal.SIGTERM)
        hard.send_signal(signal.SIGTERM)
        for proc in (gentle, hard):  # signals sent at once may arrive as one
            wait_for(lambda: "stopping: taking no new work" in cluster.log(proc.log_name), 30, "the worker to take the signal")
        hard.send_signal(signal.SIGTERM)
        assert hard.wait(30) == 1  # the second signal: out at once, its attempt killed
        assert list((tmp_path / hard.log_name).iterdir()) == []  # and its map outputs removed
        wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                 for p in slots), 10, "the killed worker's slot processes to end")
        assert gentle.poll() is None  # the first signal: its held attempt goes on
        cluster.release()
        assert gentle.wait(60) == 0
        result = cluster.finish(driver)
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        job = cluster.job()
        unfinished = [a for a in cluster.attempts(job) if a["worker"] == gentle_id and a["state"] != "succeeded"]
        assert unfinished == []  # everything the gently stopped worker started, it finished
        assert f"worker {gentle_id} left" in cluster.log("master")
        cluster.workers = [w for w in cluster.workers if w not in (gentle, hard)]
        cluster.stop()
