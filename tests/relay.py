"""An on-path relay for the wire tests: a TCP proxy between a client and an mrengine server, run as
a process of its own on a test host:

    python tests/relay.py UPSTREAM BEHAVIOUR DIR

It listens on the host's address, writes that to DIR/address, forwards the handshake as it is and
then treats every frame the server sends as BEHAVIOUR says: `forward` it, `forge` the first `work`
reply that assigns a task (its job code swapped for a pickle that creates DIR/forged-pickle-ran), or
`replay` the server's first frame in place of its second. It appends every byte that passes, both
ways, to DIR/recorded, and one line per event to DIR/events. It holds no secret: it can do only
what an attacker on the path can.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading

from mrengine import channel, comm, protocol, serde

HANDSHAKE_FROM_SERVER = (4 + 32, 1 + 32)  # the hello (magic, nonce); then, after the client's answer, the mode and proof


class MakeDir:
    """Unpickling this creates a directory: the marker that a forged pickle ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


class Relay:
    def __init__(self, upstream: str, behaviour: str, out_dir: str, host: str):
        self.upstream = comm.parse_address(upstream)
        self.behaviour = behaviour
        self.out_dir = out_dir
        self.listener = socket.create_server((host, 0))
        self._lock = threading.RLock()
        self._frames_seen: list[bytes] = []
        self._forged = False

    def _event(self, text: str) -> None:
        with self._lock, open(os.path.join(self.out_dir, "events"), "a") as f:
            f.write(text + "\n")

    def _record(self, data: bytes) -> None:
        with self._lock, open(os.path.join(self.out_dir, "recorded"), "ab") as f:
            f.write(data)

    def serve(self) -> None:
        host, port = self.listener.getsockname()[:2]
        with open(os.path.join(self.out_dir, "address.tmp"), "w") as f:
            f.write(f"{host}:{port}")
        os.replace(os.path.join(self.out_dir, "address.tmp"), os.path.join(self.out_dir, "address"))
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream)
            self._event("connection")
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._frames, args=(server, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._record(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def _frames(self, server: socket.socket, client: socket.socket) -> None:
        reader = server.makefile("rb")
        try:
            for size in HANDSHAKE_FROM_SERVER:
                handshake = reader.read(size)
                self._record(handshake)
                client.sendall(handshake)
            while len(header := reader.read(protocol.HEADER.size)) == protocol.HEADER.size:
                (length,) = protocol.HEADER.unpack(header)
                sealed = reader.read(length + channel.TAG)
                self._record(header + sealed)
                client.sendall(self._treat(header + sealed))
        except OSError:
            pass
        for s in (server, client):
            s.close()

    def _treat(self, frame: bytes) -> bytes:
        with self._lock:
            self._frames_seen.append(frame)
            if self.behaviour == "replay" and len(self._frames_seen) == 2:
                self._event("replayed")
                return self._frames_seen[0]
            if self.behaviour == "forge" and not self._forged:
                forged = self._forge(frame)
                if forged:
                    self._forged = True
                    self._event("forged")
                    return forged
        return frame

    def _forge(self, frame: bytes) -> bytes | None:
        """The frame with its job code swapped, keeping its tag; None if it assigns no task. (The body
        travels in the clear without encryption, so an on-path relay can read and rewrite it.)"""
        body, tag = frame[protocol.HEADER.size:-channel.TAG], frame[-channel.TAG:]
        try:
            msg = serde.loads(body)
        except Exception:
            return None  # encrypted, or a segment
        if not isinstance(msg, dict) or msg.get("type") != "work" or not msg.get("assign"):
            return None
        evil = pickle.dumps(MakeDir(os.path.join(self.out_dir, "forged-pickle-ran")))
        forged = serde.dumps({**msg, "jobs": {job_id: evil for job_id in msg["jobs"]}})
        return protocol.HEADER.pack(len(forged)) + forged + tag


if __name__ == "__main__":
    upstream, behaviour, out_dir = sys.argv[1:4]
    Relay(upstream, behaviour, out_dir, comm.parse_address(upstream)[0]).serve()
