"""Mistakes on the command line: each is one paragraph naming the real cause, a non-zero exit and no
traceback. Bad --master addresses and ports, a missing or a wrong secret, an output location that
cannot be written (found before any task runs), and `verify` on what is not an mrengine output.
Also how -p / -P type parameters, and --counters listing mrengine's own counters."""

import json
import os
import socket
import socketserver
import threading

import pytest

from conftest import JOBS, SAMPLE_TEXT, TEST_JOBS, run_cli
from mrengine import protocol
from mrengine.cluster import EmbeddedCluster

WORDCOUNT = os.path.join(JOBS, "wordcount.py")
USAGE, STORAGE, PROTOCOL, CLUSTER = 2, 3, 6, 7

pytestmark = pytest.mark.timeout(240)


def assert_one_error(result, code, *phrases):
    """Exit `code`, no traceback, and one error paragraph holding every phrase."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith(("mrengine: error:", "Error:"))]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], result.stderr


def small_input(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("to be or not to be\n")
    return text


# ---------------------------------------------------------------- --master addresses


@pytest.mark.parametrize("address, phrase", [
    ("nohost", "address 'nohost' needs a port (HOST:PORT)"),
    ("localhost:http", "address 'localhost:http' has a bad port"),
    ("127.0.0.1:99999", "address '127.0.0.1:99999' has a bad port (a number from 0 to 65535)"),
    ("127.0.0.1:0", "has port 0, which only a server binding may use"),
])
@pytest.mark.parametrize("command", ["status", "run"])
def test_a_malformed_master_address_is_a_usage_error(tmp_path, command, address, phrase):
    args = ("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out") if command == "run" else ("status",)
    result = run_cli(*args, "--master", address)
    assert_one_error(result, USAGE, "--master", phrase)


def test_an_unknown_host(tmp_path):
    result = run_cli("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out", "--master", "nohost.invalid:7070")
    assert_one_error(result, CLUSTER, "cannot connect to nohost.invalid:7070: unknown host 'nohost.invalid'", "check --master")
    assert not (tmp_path / "out").exists()


def test_nothing_listening():
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        result = run_cli("status", "--master", address)
    assert_one_error(result, CLUSTER, f"cannot connect to {address}: Connection refused",
                     "check --master, and that `mrengine master` runs there")


class _Speaker(socketserver.BaseRequestHandler):
    """Says its `greeting` (b"" hangs up at once, None stays silent until the client gives up)."""

    greeting: bytes | None = b""

    def handle(self):
        if self.greeting is None:
            self.request.settimeout(30)
            self.request.recv(1024)  # until the client hangs up
            return
        self.request.sendall(self.greeting)


@pytest.fixture
def stranger():
    """Starts a TCP server of another kind; returns its address."""
    servers = []

    def start(greeting):
        handler = type("Handler", (_Speaker,), {"greeting": greeting})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "127.0.0.1:%d" % server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("greeting, phrase", [
    (b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n", "is not an mrengine endpoint (it greeted with b'SSH-2.0-"),
    (b"MRE\x01" + bytes(32), f"speaks mrengine protocol version 1, this mrengine version {protocol.VERSION}"),
    (b"MRE\x04" + bytes(32), f"speaks mrengine protocol version 4, this mrengine version {protocol.VERSION}"),  # before sealed frames
    (b"", "is not an mrengine endpoint (it hung up on connection)"),
    pytest.param(None, "sent no mrengine greeting (the handshake took over 10s): it is not an mrengine master or worker",
                 marks=pytest.mark.slow),  # e.g. a web server; waits out the 10 s handshake deadline
])
def test_a_port_that_is_not_mrengine(stranger, greeting, phrase):
    address = stranger(greeting)
    assert_one_error(run_cli("status", "--master", address), PROTOCOL, address, phrase)


# ---------------------------------------------------------------- a real cluster: secrets, a worker's port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and one worker with a secret, as `mrengine run` starts them; .secret_file holds the secret."""
    with EmbeddedCluster(1) as running:
        running.secret_file = tmp_path_factory.mktemp("secret") / "cluster.key"
        running.secret_file.write_bytes(running.secret)
        yield running


def test_a_missing_secret_says_one_is_needed_and_how_to_give_it(cluster, tmp_path):
    for args in (("status",), ("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out")):
        result = run_cli(*args, "--master", cluster.address)
        assert_one_error(result, PROTOCOL, f"{cluster.address} refused our credentials: it needs the cluster secret "
                         "and none was given; pass --secret-file FILE")
        assert "differs" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_wrong_secret_says_it_differs(cluster, tmp_path):
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not the cluster secret\n")
    for args in (("status",), ("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out")):
        result = run_cli(*args, "--master", cluster.address, "--secret-file", wrong)
        assert_one_error(result, PROTOCOL, f"{cluster.address} refused our credentials: the cluster secret differs "
                         "(check --secret-file)")
    assert not (tmp_path / "out").exists()


def test_a_workers_shuffle_port_is_not_a_master(cluster, tmp_path):
    status = run_cli("status", "--master", cluster.address, "--secret-file", cluster.secret_file, "--json")
    assert status.returncode == 0, status.stderr
    (worker,) = json.loads(status.stdout)["workers"]
    for args in (("status",), ("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out")):
        result = run_cli(*args, "--master", worker["shuffle"], "--secret-file", cluster.secret_file)
        assert_one_error(result, CLUSTER, f"{worker['shuffle']} is an mrengine endpoint but not a master",
                         "give the master's HOST:PORT to --master")


def test_the_right_secret_runs_a_job(cluster, tmp_path):
    result = run_cli("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out", "--master", cluster.address,
                     "--secret-file", cluster.secret_file)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["_REPORT.json", "_SUCCESS", "part-00000", "part-00001"]


# ---------------------------------------------------------------- an output that cannot be written


def test_an_output_under_a_regular_file_is_refused_before_any_task(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a directory was meant\n")
    result = run_cli("run", WORDCOUNT, SAMPLE_TEXT, "-o", blocker / "wc" / "today", "--workers", 1)
    assert_one_error(result, USAGE, f"output directory '{blocker}/wc/today' cannot be created: '{blocker}' is a file")
    assert "map 0/" not in result.stderr, "no job may be submitted"
    assert blocker.read_text() == "a file where a directory was meant\n"


def test_an_output_where_nobody_may_write_is_refused_before_any_task(tmp_path):
    # sysfs refuses new directories even to root, where a chmod'ed directory would not.
    result = run_cli("run", WORDCOUNT, SAMPLE_TEXT, "-o", "/sys/mrengine-test-out/wc", "--workers", 1)
    assert_one_error(result, STORAGE, "output directory '/sys/mrengine-test-out/wc': permission denied")
    assert "AWS" not in result.stderr, "a local path is no matter of credentials"
    assert "map 0/" not in result.stderr, "no job may be submitted"


def test_the_write_check_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    done = run_cli("run", WORDCOUNT, small_input(tmp_path), "-o", out, "--workers", 1)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["_REPORT.json", "_SUCCESS", "part-00000", "part-00001"]
    failed = run_cli("run", os.path.join(TEST_JOBS, "failing_mapper.py"), SAMPLE_TEXT, "-o", tmp_path / "a" / "b",
                     "--workers", 1, "--max-attempts", 1)
    assert failed.returncode == 5, failed.stderr
    assert not (tmp_path / "a").exists(), "the directories the check made went with it"


# ---------------------------------------------------------------- verify on what is not an mrengine output


def _written_by(tmp_path, success):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "part-00000").write_text("a\t1\n")
    if isinstance(success, bytes):
        (folder / "_SUCCESS").write_bytes(success)
    elif success == "dir":
        (folder / "_SUCCESS").mkdir()
    return folder


@pytest.mark.parametrize("success, phrase", [
    (None, "is not a finished mrengine output: it has no _SUCCESS (the job did not finish, or"),
    (b"", "its _SUCCESS holds no mrengine manifest (it is empty, as Hadoop's and Spark's are)"),
    (b"job=wordcount\n", "its _SUCCESS holds no mrengine manifest (it is not JSON: "),
    (b"[1, 2]\n", "its _SUCCESS holds no mrengine manifest (it names no job)"),
    (b'{"job": "wc"}\n', "(it lists neither parts nor files)"),
    (b'{"job": "wc", "parts": {"part-00000": 4}}\n', "(its parts are not {name: {bytes, records, crc32}})"),
    (b'{"job": "wc", "files": {"model.json": "big"}}\n', "(its files are not {name: bytes})"),
    ("dir", "its _SUCCESS holds no mrengine manifest (it is a directory)"),
])
def test_verify_on_a_folder_that_is_not_an_mrengine_output(tmp_path, success, phrase):
    folder = _written_by(tmp_path, success)
    assert_one_error(run_cli("verify", folder), USAGE, f"'{folder}' is not", phrase)


def test_verify_on_a_missing_folder_or_a_file(tmp_path):
    assert_one_error(run_cli("verify", tmp_path / "nothing"), STORAGE, f"output directory '{tmp_path}/nothing' does not exist")
    a_file = small_input(tmp_path)
    assert_one_error(run_cli("verify", a_file), USAGE, f"'{a_file}' is a file, not an output directory")
    assert_one_error(run_cli("verify", a_file / "out"), STORAGE, "does not exist")


# ---------------------------------------------------------------- -p and -P


def _params_seen(tmp_path, *options) -> dict:
    out = tmp_path / "params"
    result = run_cli("run", os.path.join(TEST_JOBS, "params_echo.py"), small_input(tmp_path), "-o", out,
                     "--workers", 1, *options)
    assert result.returncode == 0, result.stderr
    lines = (out / "part-00000").read_text().splitlines()
    return {name: tuple(json.loads(seen)) for name, seen in (line.split("\t") for line in lines)}


def test_p_types_json_values_and_P_keeps_strings(tmp_path):
    seen = _params_seen(tmp_path, "-p", "ver=1.10", "-p", "epochs=20", "-p", "fast=true", "-p", "name=wc",
                        "-p", 'quoted="1.10"', "-P", "raw=1.10", "--str-param", "flag=true", "-P", "empty=")
    assert seen == {"ver": ("float", 1.1), "epochs": ("int", 20), "fast": ("bool", True), "name": ("str", "wc"),
                    "quoted": ("str", "1.10"), "raw": ("str", "1.10"), "flag": ("str", "true"), "empty": ("str", "")}


def test_a_parameter_given_both_typed_and_as_a_string_is_refused(tmp_path):
    result = run_cli("run", WORDCOUNT, small_input(tmp_path), "-o", tmp_path / "out", "-p", "ver=1.10", "-P", "ver=1.10")
    assert_one_error(result, USAGE, "can't give 'ver' both as -p and as -P")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- --counters


def _counters_printed(stderr: str) -> dict:
    lines = stderr.split("  counters:\n", 1)[1].splitlines() if "  counters:\n" in stderr else []
    return {name: int(v) for name, v in (line.strip().split(" = ") for line in lines if line.startswith("    "))}


def test_counters_lists_mrengine_counters_beside_the_jobs(tmp_path):
    job = os.path.join(TEST_JOBS, "counters.py")
    text = tmp_path / "in.txt"
    text.write_text("alpha beta alpha\n\nextraordinarily long words\n")
    default = run_cli("run", job, text, "-o", tmp_path / "a", "--workers", 1)
    assert default.returncode == 0, default.stderr
    shown = _counters_printed(default.stderr)
    assert shown["lines/all"] == 3 and shown["lines/blank"] == 1 and shown["words/total"] == 6
    assert not [name for name in shown if name.startswith("mrengine/")]

    every = run_cli("run", job, text, "-o", tmp_path / "b", "--workers", 1, "--counters")
    assert every.returncode == 0, every.stderr
    shown = _counters_printed(every.stderr)
    assert shown["lines/all"] == 3 and shown["words/long"] == 1 and shown["words/distinct"] == 5
    assert shown["mrengine/map_input_records"] == 3
    assert shown["mrengine/map_input_bytes"] == text.stat().st_size
    assert shown["mrengine/map_output_records"] == 6
    assert shown["mrengine/reduce_input_groups"] == shown["mrengine/reduce_output_records"] == 5
    names = list(shown)
    assert names[0].startswith("mrengine/") and names == sorted(names, key=lambda n: not n.startswith("mrengine/"))


def test_counters_of_a_main_job(tmp_path):
    data = tmp_path / "table.csv"
    data.write_text("".join(f"{i},{i * 2}\n" for i in range(100)))
    result = run_cli("run", os.path.join(TEST_JOBS, "iterative_counts.py"), data, "-o", tmp_path / "out",
                     "--workers", 1, "--counters")
    assert result.returncode == 0, result.stderr
    shown = _counters_printed(result.stderr)
    assert shown["mrengine/map_input_records"] == 5 * 100  # five rounds over the same rows
    assert shown["mrengine/split_reads"] + shown.get("mrengine/split_cache_hits", 0) == 5
    assert any(name.startswith("processes/") for name in shown)
