"""TCP connections between drivers, the master and workers.

Before anything else, both ends prove they hold the cluster's secret (mutual HMAC-SHA256
challenge-response, compared in constant time); only then is a single frame read. So a peer without
the secret can never make anyone decode a frame, let alone unpickle job code. The server's answer
also says whether the connection is encrypted. After that, messages are `protocol` frames and map
output segments follow a header frame as chunks, each sealed by `channel` with keys of this
connection: a frame that someone on the path injects, replays or reorders fails its check, closes
the connection and is never decoded.

A peer that fails or abandons the handshake, or sends an oversize, undecodable or truncated frame,
is a `ProtocolError`: a server logs it and closes that one connection. A peer that hangs up between
frames, or a connection that times out, is a `ConnectionClosed`.

`Server` serves each connection on a thread of its own (a worker's shuffle server: few peers, large
transfers); `LoopServer` serves all of them from one selector loop (the master: thousands of workers'
heartbeats, long-polls held without a thread). Either stays up whatever its peers do: the whole
handshake has a deadline (a peer dribbling it byte by byte is dropped), only so many connections may
be in their handshake at once (the rest are closed at once), and an accept that fails (out of file
descriptors, say) is logged and retried after a back-off instead of ending the accept loop.
"""

from __future__ import annotations

import collections
import encodings.idna  # noqa: F401  (imported by the first address lookup: here, once, before any fork)
import errno
import hashlib
import hmac
import logging
import os
import queue
import selectors
import socket
import threading
import time
from typing import BinaryIO, Callable

from . import channel, protocol
from .errors import ClusterError, MrEngineError, ProtocolError

log = logging.getLogger("mrengine.comm")

_MAGIC = b"MRE" + bytes([protocol.VERSION])
_NONCE = 32
HANDSHAKE_TIMEOUT = 10.0  # for the whole handshake, not per read
MAX_HANDSHAKES = 64  # connections a server lets be in their handshake at once
ACCEPT_BACKOFF = (0.01, 1.0)  # first and longest pause after a failed accept, doubling in between
_CHUNK = 1 << 20  # bytes of a map output segment per sealed frame


class ConnectionClosed(ProtocolError):
    """The peer went away."""


def _mac(secret: bytes, role: bytes, a: bytes, b: bytes, mode: bytes = b"") -> bytes:
    return hmac.new(secret, role + a + b + mode, hashlib.sha256).digest()


class Connection:
    """One authenticated TCP connection carrying frames."""

    def __init__(self, sock: socket.socket, peer: str, max_frame: int = protocol.DEFAULT_MAX_FRAME):
        self.sock = sock
        self.peer = peer
        self.max_frame = max_frame
        self._send_lock = threading.Lock()
        self._out: channel.Sealer | None = None  # set by the handshake
        self._in: channel.Sealer | None = None
        self.encrypted = False
        self._deadline: float | None = None  # of the handshake under way, as time.monotonic()

    # ------------------------------------------------------------ raw bytes

    def _recv_exact(self, n: int, between_frames: bool = False) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self._deadline is not None:
                self._wait_at_most_until_deadline()
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise ConnectionClosed(self._timed_out()) from None
            except OSError as exc:
                raise ConnectionClosed(f"{self.peer}: {exc}") from None
            if not chunk:
                if buf or not between_frames:
                    raise self._truncated(len(buf), n)
                raise ConnectionClosed(f"{self.peer} closed the connection")
            buf += chunk
        return bytes(buf)

    def _truncated(self, got: int, wanted: int) -> ProtocolError:
        return ProtocolError(f"{self.peer} closed the connection after {got} of {wanted} bytes (truncated)")

    def _wait_at_most_until_deadline(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionClosed(self._timed_out())
        self.sock.settimeout(remaining)

    def _timed_out(self) -> str:
        if self._deadline is not None:  # the socket's timeout is what remains of the handshake's
            return f"{self.peer}: the handshake took over {HANDSHAKE_TIMEOUT:.0f}s"
        return f"{self.peer}: timed out"

    def _send_all(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionClosed(f"{self.peer}: {exc}") from None

    # ------------------------------------------------------------ handshake

    def handshake(self, authenticate, secret: bytes, *args) -> None:
        """Run one of the authenticate_as_* methods within HANDSHAKE_TIMEOUT all told."""
        self._deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        try:
            authenticate(self, secret, *args)
        finally:
            self._deadline = None

    def authenticate_as_server(self, secret: bytes, encrypt: bool = False) -> None:
        nonce = os.urandom(_NONCE)
        try:
            self._send_all(_MAGIC + nonce)
            reply = self._recv_exact(_NONCE + 32)
        except ProtocolError as exc:
            raise ProtocolError(f"{self.peer} did not complete the handshake: {exc}") from None
        client_nonce, client_mac = reply[:_NONCE], reply[_NONCE:]
        if not hmac.compare_digest(client_mac, _mac(secret, b"C", nonce, client_nonce)):
            raise ProtocolError("failed authentication (wrong or missing secret)")
        mode = bytes([encrypt])
        self._send_all(mode + _mac(secret, b"S", client_nonce, nonce, mode))
        to_server, to_client = channel.derive_keys(secret, nonce, client_nonce, encrypt)
        self._start_sealing(out_key=to_client, in_key=to_server, encrypted=encrypt)

    def authenticate_as_client(self, secret: bytes) -> None:
        hello = self._recv_hello()
        nonce = hello[len(_MAGIC):]
        mine = os.urandom(_NONCE)
        self._send_all(mine + _mac(secret, b"C", nonce, mine))
        try:
            answer = self._recv_exact(1 + 32)
        except ConnectionClosed:
            raise
        except ProtocolError:
            raise ProtocolError(_refusal(self.peer, secret)) from None
        mode, server_mac = answer[:1], answer[1:]
        if not hmac.compare_digest(server_mac, _mac(secret, b"S", mine, nonce, mode)) or mode[0] > 1:
            raise ProtocolError(f"{self.peer} failed to prove it holds the cluster secret")
        to_server, to_client = channel.derive_keys(secret, nonce, mine, bool(mode[0]))
        self._start_sealing(out_key=to_server, in_key=to_client, encrypted=bool(mode[0]))

    def _start_sealing(self, out_key: bytes, in_key: bytes, encrypted: bool) -> None:
        self._out = channel.Sealer(out_key, encrypted)
        self._in = channel.Sealer(in_key, encrypted)
        self.encrypted = encrypted

    def _recv_hello(self) -> bytes:
        """The server's greeting, which it sends first; anything else means the peer is no mrengine
        endpoint of this protocol version. A silence or a hang-up is a ConnectionClosed, so a peer
        still starting up, or overloaded, is retried by those who retry."""
        try:
            hello = self._recv_exact(len(_MAGIC) + _NONCE)
        except ConnectionClosed as exc:
            reason = str(exc).removeprefix(f"{self.peer}: ")
            raise ConnectionClosed(f"{self.peer} sent no mrengine greeting ({reason}): it is not an mrengine master "
                                   f"or worker, or it is overloaded") from None
        except ProtocolError:  # a server with too many handshakes under way hangs up too: retry
            raise ConnectionClosed(f"{self.peer} is not an mrengine endpoint (it hung up on connection), or it is "
                                   f"overloaded") from None
        if hello[: len(_MAGIC)] == _MAGIC:
            return hello
        if hello[:3] == _MAGIC[:3]:
            raise ProtocolError(f"{self.peer} speaks mrengine protocol version {hello[3]}, this mrengine version "
                                f"{protocol.VERSION}: run the same mrengine release on every host")
        raise ProtocolError(f"{self.peer} is not an mrengine endpoint (it greeted with {hello[:16]!r}); "
                            f"check the HOST:PORT")

    # ------------------------------------------------------------ frames

    def send(self, msg: dict) -> None:
        with self._send_lock:
            self._send_all(self._sealed_message(msg))

    def recv(self) -> dict:
        return protocol.decode(self._recv_sealed())

    def _sealed_message(self, msg: dict) -> bytes:
        """`msg` as the next frame on the wire (hold the send lock: sealing takes the next sequence number)."""
        return self._sealed(memoryview(protocol.encode(msg, self.max_frame))[protocol.HEADER.size:])

    def _sealed(self, body) -> bytes:
        """One frame: the length header, then the body sealed with the next sequence number."""
        header = protocol.HEADER.pack(len(body))
        return header + self._out.seal(header, body)

    def _send_sealed(self, body) -> None:
        self._send_all(self._sealed(body))

    def _recv_sealed(self) -> bytes:
        """The body of the next frame, once its tag proves it is the frame the peer sent next."""
        header = self._recv_exact(protocol.HEADER.size, between_frames=True)
        length = protocol.frame_length(header, self.max_frame)
        return self._in.open(header, self._recv_exact(length + channel.TAG), self.peer)

    def take_message(self, buf: bytearray) -> dict | None:
        """The next message from bytes received so far, removed from `buf`; None until all of its frame is
        there. The same checks as `recv`: an oversize length is refused before its body arrives."""
        if len(buf) < protocol.HEADER.size:
            return None
        header = bytes(buf[:protocol.HEADER.size])
        end = protocol.HEADER.size + protocol.frame_length(header, self.max_frame) + channel.TAG
        if len(buf) < end:
            return None
        sealed = bytes(buf[protocol.HEADER.size:end])
        del buf[:end]
        return protocol.decode(self._in.open(header, sealed, self.peer))

    def hung_up(self, buf: bytearray) -> ProtocolError:
        """What the peer's hang-up means with `buf` not yet taken: a frame cut short, or a goodbye between frames."""
        if not buf:
            return ConnectionClosed(f"{self.peer} closed the connection")
        if len(buf) < protocol.HEADER.size:
            return self._truncated(len(buf), protocol.HEADER.size)
        length = protocol.frame_length(bytes(buf[:protocol.HEADER.size]), self.max_frame)
        return self._truncated(len(buf) - protocol.HEADER.size, length + channel.TAG)

    def request(self, msg: dict) -> dict:
        """Send a request and return its reply; an error reply is raised as the error it names."""
        self.send(msg)
        reply = self.recv()
        if reply["type"] == "error":
            raise remote_error(reply)
        return reply

    def send_file_range(self, f: BinaryIO, offset: int, length: int) -> None:
        """`length` bytes of `f` from `offset` as sealed chunks; a file shorter than that is a ProtocolError."""
        f.seek(offset)
        with self._send_lock:
            while length:
                chunk = f.read(min(length, _CHUNK))
                if not chunk:
                    raise ProtocolError(f"{getattr(f, 'name', 'the file')} ended {length} bytes short of its segment")
                self._send_sealed(chunk)
                length -= len(chunk)

    def recv_to_file(self, out: BinaryIO, length: int) -> None:
        remaining = length
        while remaining:
            chunk = self._recv_sealed()
            if len(chunk) > remaining:
                raise ProtocolError(f"{self.peer} sent {len(chunk) - remaining} bytes more than its {length}-byte segment")
            out.write(chunk)
            remaining -= len(chunk)

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _hint(exc: BaseException) -> str:
    if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
        return ": out of file descriptors; raise the open-file limit (ulimit -n) if this persists"
    return ""


def _refusal(peer: str, secret: bytes) -> str:
    """Why a server hung up on our credentials: we sent none, or not its secret."""
    if not secret:
        return (f"{peer} refused our credentials: it needs the cluster secret and none was given; pass "
                f"--secret-file FILE with the secret the master was started with")
    return f"{peer} refused our credentials: the cluster secret differs (check --secret-file)"


def remote_error(reply: dict) -> MrEngineError:
    from . import errors

    cls = getattr(errors, reply.get("error", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, MrEngineError)):
        cls = MrEngineError
    args = reply.get("args") or [reply.get("message", "remote error")]
    return cls(*args)


def parse_address(address: str, default_port: int | None = None) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"address {address!r} needs a port (HOST:PORT)")
        return address, default_port
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} has a bad port (a number from 0 to 65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(address: str, secret: bytes, timeout: float = 10.0, max_frame: int = protocol.DEFAULT_MAX_FRAME) -> Connection:
    """Open an authenticated connection to HOST:PORT."""
    host, port = parse_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise ClusterError(f"cannot connect to {address}: unknown host {host!r} ({exc.strerror})") from None
    except OSError as exc:
        raise ClusterError(f"cannot connect to {address}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock, address, max_frame)
    try:
        conn.handshake(Connection.authenticate_as_client, secret)
        conn.settimeout(timeout)
    except BaseException:
        conn.close()
        raise
    return conn


class Server:
    """Accepts connections, authenticates each, and hands it to `handler(conn)` on its own thread.

    A connection that fails authentication or sends a bad frame is closed and logged; the server
    keeps serving everyone else, and keeps accepting through any error. With `encrypt` its
    connections are encrypted; the handshake tells the clients.
    """

    def __init__(self, host: str, port: int, secret: bytes, handler: Callable[[Connection], None], name: str,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME):
        self.secret = secret
        self.encrypt = False
        self.handler = handler
        self.name = name
        self.max_frame = max_frame
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ClusterError(f"{name} cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.sock.listen(128)
        self.host, self.port = self.sock.getsockname()[:2]
        self._conns: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._dropped, self._dropped_logged = 0, 0.0  # connections dropped since the last log line about it
        self._thread = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "Server":
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        pause = ACCEPT_BACKOFF[0]
        while not self._stopped:
            try:
                sock, addr = self.sock.accept()
                self._start_serving(sock, addr)
            except (OSError, RuntimeError) as exc:  # RuntimeError: no thread could be started
                if self._stopped:
                    return  # the socket was closed by stop()
                log.warning("%s: accepting a connection failed (%s)%s; trying again in %.2fs", self.name, exc,
                            _hint(exc), pause)
                time.sleep(pause)
                pause = min(pause * 2, ACCEPT_BACKOFF[1])
                continue
            pause = ACCEPT_BACKOFF[0]

    def _start_serving(self, sock: socket.socket, addr) -> None:
        if not self._handshakes.acquire(blocking=False):
            sock.close()
            self._dropped += 1
            if time.monotonic() - self._dropped_logged > 1.0:  # one line a second, however many are dropped
                log.warning("%s: dropped %d connection(s), the last from %s:%s: %d others are in their handshake",
                            self.name, self._dropped, addr[0], addr[1], MAX_HANDSHAKES)
                self._dropped, self._dropped_logged = 0, time.monotonic()
            return
        try:
            threading.Thread(target=self._serve, args=(sock, addr), name=f"{self.name}-conn", daemon=True).start()
        except BaseException:
            self._handshakes.release()
            sock.close()
            raise

    def _serve(self, sock: socket.socket, addr) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        conn = Connection(sock, peer, self.max_frame)
        with self._lock:
            if self._stopped:
                self._handshakes.release()
                conn.close()
                return
            self._conns.add(conn)
        try:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.handshake(Connection.authenticate_as_server, self.secret, self.encrypt)
            finally:
                self._handshakes.release()
            conn.settimeout(None)
        except Exception as exc:
            self._drop(conn, exc)
            return
        self._serve_authenticated(conn)

    def _serve_authenticated(self, conn: Connection) -> None:
        """Run the handler on this connection's own thread until the connection ends."""
        try:
            self.handler(conn)
        except Exception as exc:
            self._drop(conn, exc)
        else:
            self._drop(conn)

    def _drop(self, conn: Connection, exc: BaseException | None = None) -> None:
        """Close `conn`, logging why unless the peer simply went away."""
        if isinstance(exc, ConnectionClosed) or exc is None:
            pass
        elif isinstance(exc, ProtocolError):
            log.warning("%s: refused connection from %s: %s", self.name, conn.peer, exc)
        else:
            log.error("%s: connection from %s failed", self.name, conn.peer, exc_info=exc)
        with self._lock:
            self._conns.discard(conn)
        conn.close()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            conns = list(self._conns)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in conns:
            conn.close()


class Request:
    """One request that a `LoopServer` read: its message, answered once by `reply` from any thread."""

    __slots__ = ("msg", "_peer", "_server")

    def __init__(self, msg: dict, peer: "_LoopPeer", server: "LoopServer"):
        self.msg, self._peer, self._server = msg, peer, server

    def reply(self, msg: dict) -> None:
        conn, server = self._peer.conn, self._server
        with conn._send_lock:  # sealed and queued in one step, so frames leave in sequence order
            data = conn._sealed_message(msg)
            server._on_loop(lambda: server._write(self._peer, data))

    def close(self) -> None:
        """Drop the connection without a reply (its peer has gone elsewhere)."""
        self._server._on_loop(lambda: self._server._close(self._peer))


class _LoopPeer:
    """A connection as the loop holds it: bytes read but not yet taken, bytes to write, and whether a
    request of it is being answered (its next one is taken only once that reply is out)."""

    __slots__ = ("conn", "inbox", "outbox", "answering", "events", "closed")

    def __init__(self, conn: Connection):
        self.conn = conn
        self.inbox = bytearray()
        self.outbox = memoryview(b"")  # what is left of the reply being written: a view, so each send is O(1)
        self.answering = False
        self.events = 0  # what the selector watches for
        self.closed = False


class LoopServer(Server):
    """A `Server` whose authenticated connections all share one thread instead of a thread each.

    The handshake runs as in `Server` (its own short-lived thread, at most MAX_HANDSHAKES at once);
    then a selector loop reads the connection without blocking, buffering partial frames, and calls
    `handler(request)` with each whole, opened and decoded request, on the loop thread itself: a
    handler there must not block (the few request types in `threaded`, which wait on storage, go to
    one of `threads` threads instead). The reply (`Request.reply`, from any thread, at once or later)
    is written back by the loop, buffered as far as the peer is slow to read it. A connection's next
    request is read only once the reply to the last is out, so no peer can stall the loop or queue up
    work, and a handler may hold a request for later (a long-poll) without holding a thread. Frames
    are checked and opened by `Connection` exactly as in `Server`; a bad one closes its connection,
    logged. One thread rather than a pool: every thread that runs Python competes for the GIL, and
    each recv and send of the loop would hand it over and wait to get it back.
    """

    def __init__(self, host: str, port: int, secret: bytes, handler: Callable[[Request], None], name: str,
                 max_frame: int = protocol.DEFAULT_MAX_FRAME, threaded: frozenset[str] = frozenset(),
                 threads: int = 2):
        super().__init__(host, port, secret, handler, name, max_frame)
        self.threaded = threaded
        self._selector = selectors.DefaultSelector()
        self._posted: collections.deque = collections.deque()  # calls for the loop thread, from other threads
        self._woken = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # for the handler threads
        self._loop_thread: int | None = None
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-loop", daemon=True)]
        self._threads += [threading.Thread(target=self._answer, name=f"{name}-handler", daemon=True)
                          for _ in range(threads)]

    def start(self) -> "LoopServer":
        for thread in self._threads:
            thread.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        for _ in self._threads[1:]:
            self._requests.put(None)
        self._post(lambda: None)  # the loop sees it is stopped

    def _serve_authenticated(self, conn: Connection) -> None:
        conn.sock.setblocking(False)
        peer = _LoopPeer(conn)
        self._post(lambda: self._watch(peer))

    # ------------------------------------------------------------ called from other threads

    def _post(self, call: Callable[[], None]) -> None:
        self._posted.append(call)
        if not self._woken:  # one wake-up byte for any number of calls posted before the loop runs them
            self._woken = True
            try:
                self._wake_write.send(b"\0")
            except OSError:  # full (the loop is woken anyway) or closed by stop()
                pass

    def _on_loop(self, call: Callable[[], None]) -> None:
        """Run `call` on the loop thread: now if this is it."""
        if threading.get_ident() == self._loop_thread:
            call()
        else:
            self._post(call)

    def _answer(self) -> None:
        while (request := self._requests.get()) is not None:
            self._handle(request)

    def _handle(self, request: Request) -> None:
        try:
            self.handler(request)
        except Exception as exc:
            self._on_loop(lambda peer=request._peer, exc=exc: self._close(peer, exc))

    # ------------------------------------------------------------ the loop thread

    def _loop(self) -> None:
        self._loop_thread = threading.get_ident()
        try:
            while not self._stopped:
                for key, events in self._selector.select():
                    if key.data is None:
                        self._run_posted()
                        continue
                    peer = key.data
                    if peer.closed:  # by an earlier event of this round
                        continue
                    try:
                        if events & selectors.EVENT_WRITE and peer.outbox:
                            self._flush(peer)
                        if events & selectors.EVENT_READ and not peer.closed:
                            self._read(peer)
                    except Exception as exc:
                        self._close(peer, exc)
        finally:
            self._selector.close()
            self._wake_read.close()
            self._wake_write.close()

    def _run_posted(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        self._woken = False  # before taking the calls: one posted from now on wakes the loop again
        while self._posted:
            call = self._posted.popleft()
            try:
                call()
            except Exception:
                log.exception("%s: unexpected error in the connection loop", self.name)

    def _watch(self, peer: _LoopPeer) -> None:
        if self._stopped:
            self._close(peer)
        else:
            self._want(peer)

    def _read(self, peer: _LoopPeer) -> None:
        try:
            data = peer.conn.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise ConnectionClosed(f"{peer.conn.peer}: {exc}") from None
        if not data:
            raise peer.conn.hung_up(peer.inbox)
        peer.inbox += data
        self._take_request(peer)

    def _take_request(self, peer: _LoopPeer) -> None:
        if not peer.answering and not peer.closed:
            msg = peer.conn.take_message(peer.inbox)
            if msg is not None:
                peer.answering = True
                request = Request(msg, peer, self)
                if msg["type"] in self.threaded:
                    self._requests.put(request)
                else:
                    self._handle(request)
        if not peer.closed:
            self._want(peer)

    def _write(self, peer: _LoopPeer, data: bytes) -> None:
        """A sealed reply: out as far as the socket takes it now, the rest when it can."""
        if peer.closed:
            return
        peer.outbox = memoryview(peer.outbox.tobytes() + data if peer.outbox else data)
        try:
            self._flush(peer)
        except Exception as exc:
            self._close(peer, exc)

    def _flush(self, peer: _LoopPeer) -> None:
        try:
            sent = peer.conn.sock.send(peer.outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise ConnectionClosed(f"{peer.conn.peer}: {exc}") from None
        peer.outbox = peer.outbox[sent:]
        if not peer.outbox:
            peer.answering = False
            if peer.inbox:  # a request that came in meanwhile, already read: next round, not from inside a reply
                self._post(lambda: self._take_request(peer))
        self._want(peer)

    def _want(self, peer: _LoopPeer) -> None:
        """Watch the peer for what it needs now: to read unless a request is being answered and more
        has come in already; to write while a reply is not all out."""
        events = 0 if peer.answering and peer.inbox else selectors.EVENT_READ
        if peer.outbox:
            events |= selectors.EVENT_WRITE
        if events == peer.events:
            return
        sock = peer.conn.sock
        if not peer.events:
            self._selector.register(sock, events, peer)
        elif not events:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, events, peer)
        peer.events = events

    def _close(self, peer: _LoopPeer, exc: BaseException | None = None) -> None:
        if peer.closed:
            return
        peer.closed = True
        if peer.events:
            try:
                self._selector.unregister(peer.conn.sock)
            except (KeyError, ValueError, OSError):  # its socket was closed by stop() already
                pass
        self._drop(peer.conn, exc)
