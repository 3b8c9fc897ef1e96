"""A real S3-compatible HTTP server for tests (moto's server mode on 127.0.0.1).

Nothing is mocked in-process: ``S3Server`` runs ``moto.server.ThreadedMotoServer``
(werkzeug + the moto Flask apps) in a daemon thread, bound to a free port, and
s3fs/botocore talk to it over a real TCP socket -- from this process or from
subprocesses (use ``server.env``).

Usage in a test module (the fixtures must be imported into the module, or the
module listed in ``pytest_plugins`` of a conftest)::

    from s3server import S3Server, s3_server, s3_bucket  # noqa: F401

    def test_x(s3_server, s3_bucket):
        fs = s3_server.fs()
        fs.pipe_file(f"{s3_bucket}/in/a.txt", b"hello")
        run_engine(f"s3://{s3_bucket}/in/*", storage_options=s3_server.storage_options)
        assert any(r.method == "GET" and r.range for r in s3_server.requests())

Interface of ``S3Server`` (context manager; stopped on exit even on error):
    endpoint_url     "http://127.0.0.1:<port>"
    storage_options  kwargs for fsspec/s3fs: endpoint_url, key, secret.  (No
                     client_kwargs region: with region_name="us-east-1" s3fs's
                     mkdir(bucket) sends LocationConstraint=us-east-1, which
                     S3 and moto reject as InvalidLocationConstraint.)
    env              env vars for a subprocess: AWS_ACCESS_KEY_ID,
                     AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL,
                     AWS_ENDPOINT_URL_S3.  botocore 1.43 honours both endpoint
                     variables (AWS_ENDPOINT_URL_S3 wins), and s3fs picks them up
                     because it passes endpoint_url=None to botocore when none is
                     given; so ``s3fs.S3FileSystem()`` needs no arguments.
    make_bucket(name) -> name
    fs(**kw)         a *fresh* s3fs.S3FileSystem (no instance/listings cache)
    requests()       copy of the server's request log (list of ``Request``)
    clear_requests()
    auth_enforced()  context manager: moto checks credentials while inside

Caches (important): fsspec caches filesystem instances per storage options, and
each instance caches directory listings.  Objects written by another instance
or another process are then invisible to ``ls``/``glob``/``exists``/``info`` of
an instance that listed before.  ``fs()`` avoids this (``skip_instance_cache=True,
use_listings_cache=False``).  Code that builds its own instance from
``storage_options`` should pass ``use_listings_cache=False`` as well, or call
``fs.invalidate_cache()`` (or ``s3fs.S3FileSystem.clear_instance_cache()``)
before listing.  Every test gets its own bucket (``s3_bucket``), so listings
never leak between tests.

Credentials: moto does NOT check them by default (any key/secret works,
moto.settings.INITIAL_NO_AUTH_ACTION_COUNT is infinite).  Inside
``auth_enforced()`` every S3 call with keys unknown to moto's IAM -- including
the default "testing" keys -- fails with PermissionError.  This switch is
process-global (all moto servers in this process).

Request log: the moto WSGI app is wrapped by ``_RequestRecorder``, which logs
every HTTP request (method, path, query, Range header) when it arrives and fills
in status and response Content-Length when the response starts -- i.e. before
the client gets the response, so the log is complete once an s3fs call returns.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

pytest.importorskip("moto.server", reason="moto[server] is needed for S3 tests")
pytest.importorskip("s3fs", reason="s3fs is needed for S3 tests")

import s3fs  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)
from moto.server import ThreadedMotoServer  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

START_TIMEOUT = 30.0  # seconds to wait for the server thread to bind
STOP_TIMEOUT = 10.0  # seconds to wait for the server thread to end
HTTP_TIMEOUT = 10.0  # seconds for the helper's own HTTP calls to moto-api


@dataclass
class Request:
    """One HTTP request as seen by the server."""

    method: str  # "GET", "HEAD", "PUT", ...
    path: str  # URL path, percent-decoded, e.g. "/bucket/dir/key"
    query: str  # raw query string, e.g. "list-type=2&prefix=dir%2F"
    range: str | None  # Range header, e.g. "bytes=2-4", else None
    status: int | None = None  # HTTP status code of the response
    content_length: int | None = None  # response Content-Length (body bytes)


class _RequestRecorder:
    """WSGI middleware that appends a ``Request`` per call to a shared list."""

    def __init__(self, app: Any, log: list[Request], lock: threading.Lock):
        self.app, self.log, self.lock = app, log, lock

    def __call__(self, environ: dict, start_response: Any) -> Any:
        req = Request(
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", ""),
            query=environ.get("QUERY_STRING", ""),
            range=environ.get("HTTP_RANGE"),
        )
        with self.lock:
            self.log.append(req)

        def recording_start_response(status: str, headers: list, *args: Any) -> Any:
            req.status = int(status.split()[0])
            for name, value in headers:
                if name.lower() == "content-length":
                    req.content_length = int(value)
            return start_response(status, headers, *args)

        return self.app(environ, recording_start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log
        pass


class _RecordingMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose WSGI app is wrapped by ``_RequestRecorder``,
    with bounded start/stop waits and startup errors re-raised in start()."""

    def __init__(self, log: list[Request], lock: threading.Lock):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self._log, self._lock = log, lock
        self._startup_error: BaseException | None = None

    def _server_entry(self) -> None:  # runs in the server thread
        try:
            app = DomainDispatcherApplication(create_backend_app)
            app = _RequestRecorder(app, self._log, self._lock)
            self._server = make_server(
                self._ip_address, self._port, app, threaded=True,
                request_handler=_QuietHandler,
            )
        except BaseException as exc:
            self._startup_error = exc
            return
        finally:
            self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server_entry, name="moto-s3-server", daemon=True
        )
        self._thread.start()
        if not self._server_ready_event.wait(START_TIMEOUT):
            raise RuntimeError(f"moto server did not start within {START_TIMEOUT}s")
        if self._startup_error is not None:
            raise RuntimeError("moto server failed to start") from self._startup_error

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is not None:
            if thread is not None and thread.is_alive():
                server.shutdown()  # serve_forever polls every 0.5 s
            server.server_close()  # release the listening socket
        if thread is not None:
            thread.join(STOP_TIMEOUT)


class S3Server:
    """A moto S3 server on 127.0.0.1:<free port>; see the module docstring."""

    region = "us-east-1"

    def __init__(self, key: str = "testing", secret: str = "testing"):
        self.key, self.secret = key, secret
        self._log: list[Request] = []
        self._lock = threading.Lock()
        self._server: _RecordingMotoServer | None = None
        self.endpoint_url = ""

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "S3Server":
        server = _RecordingMotoServer(self._log, self._lock)
        self._server = server
        server.start()
        host, port = server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "S3Server":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- client configuration ---------------------------------------------
    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.key,
            "secret": self.secret,
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def fs(self, **overrides: Any) -> s3fs.S3FileSystem:
        """A new S3FileSystem for this server, with no instance or listings cache."""
        kwargs: dict[str, Any] = dict(
            self.storage_options, skip_instance_cache=True, use_listings_cache=False
        )
        kwargs.update(overrides)
        return s3fs.S3FileSystem(**kwargs)

    def make_bucket(self, name: str) -> str:
        self.fs().mkdir(name)
        return name

    # -- request log ---------------------------------------------------------
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # -- credential checking -------------------------------------------------
    def _set_no_auth_count(self, value: str) -> None:
        req = urllib.request.Request(
            self.endpoint_url + "/moto-api/reset-auth", data=value.encode(),
            method="POST", headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            resp.read()

    @contextlib.contextmanager
    def auth_enforced(self) -> Iterator[None]:
        """While inside, moto rejects keys unknown to its IAM (PermissionError)."""
        self._set_no_auth_count("0")
        try:
            yield
        finally:
            self._set_no_auth_count("inf")


def unique_bucket_name(prefix: str = "mrtest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the whole test session."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh empty bucket name; the request log is cleared after creating it."""
    name = s3_server.make_bucket(unique_bucket_name())
    s3_server.clear_requests()
    yield name
    with contextlib.suppress(Exception):  # best effort: free moto's memory
        s3_server.fs().rm(name, recursive=True)
