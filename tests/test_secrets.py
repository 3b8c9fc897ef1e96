"""A master always authenticates (issue 13, case 8): without --secret-file it makes a secret in a
file only its user can read and prints the path; the embedded cluster uses a fresh one per run."""

import os
import signal
import stat
import subprocess

import pytest

from cluster_env import MRENGINE, wait_for
from conftest import run_cli
from mrengine.cluster import EmbeddedCluster

pytestmark = pytest.mark.timeout(120)


def test_a_master_without_a_secret_file_makes_one_and_refuses_clients_without_it(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    ready = tmp_path / "master.address"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    master = subprocess.Popen([*MRENGINE, "master", "--bind", "127.0.0.1:0", "--ready-file", ready], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = wait_for(lambda: ready.exists() and ready.read_text(), 30, "the master to listen")
        line = master.stderr.readline()
        assert "no --secret-file given: made a new secret in " in line, line
        path = line.split(" made a new secret in ", 1)[1].split(" (readable only by you)")[0]
        assert os.path.dirname(path) == str(runtime / "mrengine")
        assert f"--secret-file {path}" in line
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert len(open(path, "rb").read().strip()) == 64

        refused = run_cli("status", "--master", address, timeout=30)
        assert refused.returncode == 6, refused.stderr
        assert "refused our credentials: it needs the cluster secret and none was given" in refused.stderr
        wrong = tmp_path / "wrong.key"
        wrong.write_text("not the secret")
        refused = run_cli("status", "--master", address, "--secret-file", wrong, timeout=30)
        assert refused.returncode == 6 and "the cluster secret differs" in refused.stderr, refused.stderr
        served = run_cli("status", "--master", address, "--secret-file", path, timeout=30)
        assert served.returncode == 0, served.stderr
        assert "workers (0 alive)" in served.stdout
    finally:
        master.send_signal(signal.SIGTERM)
        assert master.wait(30) == 0
    assert not os.path.exists(path)  # the secret goes with its master


def test_the_embedded_cluster_uses_a_fresh_private_secret_each_run():
    seen = []
    for _ in range(2):
        with EmbeddedCluster(1) as cluster:
            secret_file = os.path.join(cluster.tmp, "secret")
            assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
            assert open(secret_file, "rb").read() == cluster.secret
            assert len(cluster.secret) == 64
            seen.append(cluster.secret)
        assert not os.path.exists(secret_file)
    assert seen[0] != seen[1]
