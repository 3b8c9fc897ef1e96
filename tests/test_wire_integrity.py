"""An on-path relay without the secret forwards the handshake, then injects, alters or replays a
frame (issue 13, case 4): the connection is cut off, nothing of the frame is decoded (the pickle it
carries never runs), it is logged, and the job still finishes exactly once the relay behaves.
With `mrengine master --encrypt` the output is the same and a capture of the traffic shows none
of the input."""

import os
import secrets
import socket
import sys
import threading
from pathlib import Path

import pytest

import netns
from cluster_env import START_TIMEOUT, Cluster, assert_same_output, loopback_cluster, reference_output, wait_for
from conftest import JOBS, read_bytes, run_cli
from mrengine import channel

pytestmark = pytest.mark.timeout(240)

RELAY = Path(__file__).with_name("relay.py")


def start_relay(cluster, host, behaviour: str, out_dir: Path) -> str:
    """A relay process in front of the cluster's master; returns its address."""
    out_dir.mkdir()
    host.popen([sys.executable, RELAY, cluster.address, behaviour, out_dir])
    return wait_for(lambda: (out_dir / "address").exists() and (out_dir / "address").read_text(), START_TIMEOUT,
                    "the relay to listen")


def events(relay_dir: Path) -> list[str]:
    path = relay_dir / "events"
    return path.read_text().split() if path.exists() else []


def worker_behind(cluster, relay_address: str, host):
    master = cluster.address
    cluster.address = relay_address
    try:
        return cluster.start_worker(host)
    finally:
        cluster.address = master


def test_a_forged_work_reply_cuts_the_connection_and_never_runs(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    relay_dir = tmp_path / "relay"
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        worker = worker_behind(cluster, start_relay(cluster, hosts[0], "forge", relay_dir), hosts[0])
        result = cluster.run_job()
        assert "forged" in events(relay_dir), "the relay never saw a work reply to forge"
        assert not (relay_dir / "forged-pickle-ran").exists()
        log = cluster.log(worker.log_name)
        assert "lost the master (frame " in log and "failed its integrity check" in log, log
        assert "nothing of it was decoded" in log
        assert events(relay_dir).count("connection") >= 2  # cut off, then connected anew
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        cluster.stop()


def test_a_replayed_frame_is_rejected(tmp_path, tmp_path_factory):
    reference = reference_output(tmp_path_factory)
    relay_dir = tmp_path / "relay"
    with netns.Hosts(1) as hosts:
        cluster = Cluster(hosts, tmp_path)
        cluster.start_master()
        worker = worker_behind(cluster, start_relay(cluster, hosts[0], "replay", relay_dir), hosts[0])
        wait_for(lambda: "failed its integrity check" in cluster.log(worker.log_name), 30, "the replay to be rejected")
        assert "replayed" in events(relay_dir)
        assert "lost the master (frame 1 from" in cluster.log(worker.log_name)
        result = cluster.run_job()
        assert result.returncode == 0, result.stderr
        assert_same_output(cluster.out, reference)
        cluster.stop()


# ---------------------------------------------------------------- the sealing itself (pure)


@pytest.mark.parametrize("encrypted", [False, True])
def test_frames_open_only_in_order_in_their_direction_and_unaltered(encrypted):
    to_server, to_client = channel.derive_keys(b"secret", b"n" * 32, b"c" * 32, encrypted)
    assert to_server != to_client
    header = (5).to_bytes(4, "big")
    sender = channel.Sealer(to_server, encrypted)
    frames = [sender.seal(header, b"frm%02d" % i) for i in range(3)]

    def rejects(receiver, frame, head=header):
        with pytest.raises(Exception, match="failed its integrity check"):
            receiver.open(head, frame, "peer")

    in_order = channel.Sealer(to_server, encrypted)
    assert [in_order.open(header, f, "p") for f in frames] == [b"frm00", b"frm01", b"frm02"]
    rejects(in_order, frames[2])  # replayed
    reordered = channel.Sealer(to_server, encrypted)
    reordered.open(header, frames[0], "p")
    rejects(reordered, frames[2])  # frame 1 skipped
    rejects(channel.Sealer(to_client, encrypted), frames[0])  # reflected to its sender
    rejects(channel.Sealer(to_server, not encrypted), frames[0])  # the other mode
    rejects(channel.Sealer(to_server, encrypted), frames[0], (6).to_bytes(4, "big"))  # header altered
    flipped = bytearray(frames[0])
    flipped[0] ^= 1
    rejects(channel.Sealer(to_server, encrypted), bytes(flipped))
    assert (b"frm00" in frames[0]) is not encrypted


# ---------------------------------------------------------------- encryption


class LoopbackCapture:
    """Every packet on the loopback interface while it runs, as a packet sniffer on the host sees it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))  # ETH_P_ALL
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.data = bytearray()
        self._running = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._running:
            try:
                self.data += self.sock.recv(1 << 17)
            except socket.timeout:
                pass

    def stop(self) -> bytes:
        self._running = False
        self._thread.join()
        self.sock.close()
        return bytes(self.data)


def run_captured(tmp_path, name: str, book: Path, *master_args) -> tuple[bytes, dict]:
    """Word count of `book` on a loopback cluster whose loopback traffic is captured."""
    base = tmp_path / name
    base.mkdir()
    with loopback_cluster(base, *master_args) as (address, secret_file, master_log):
        capture = LoopbackCapture()
        try:
            result = run_cli("run", os.path.join(JOBS, "wordcount.py"), book, "-o", base / "out", "--reducers", 3,
                             "--master", address, "--secret-file", secret_file, timeout=120)
        finally:
            captured = capture.stop()
        assert result.returncode == 0, result.stderr
        assert ("(encrypted)" in master_log.read_text()) == bool(master_args)
    return captured, read_bytes(base / "out")


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing loopback packets needs root (CAP_NET_RAW)")
def test_encrypted_traffic_gives_the_same_output_and_shows_no_plaintext(tmp_path):
    words = [secrets.token_hex(8) for _ in range(200)]  # in no one else's traffic; too random for LZ4 to shorten
    book = tmp_path / "book.txt"
    book.write_text("".join(f"{w} and some more words {w}\n" for w in words) * 3)
    plain_capture, plain = run_captured(tmp_path, "plain", book)
    secret_capture, encrypted = run_captured(tmp_path, "encrypted", book, "--encrypt")
    assert encrypted == plain and len(plain) == 3
    seen_plain = [w for w in words if w.encode() in plain_capture]
    assert len(seen_plain) > len(words) // 2  # the capture does see the map outputs go by in the clear...
    assert [w for w in words if w.encode() in secret_capture] == []  # ...and none of them encrypted
    assert len(secret_capture) > 10_000
