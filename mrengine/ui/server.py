"""The UI's HTTP server: the standard library's ThreadingHTTPServer, GET only.

Routes (each HTML page has a JSON twin under /api; see docs/UI.md):
/cluster, /jobs, /jobs/ID, /jobs/ID/logs/ATTEMPT (plain text), /metrics (Prometheus text).
Off loopback every request needs the token derived from the cluster secret (`token_of`), as a bearer
token or as the password of HTTP basic auth (any user name), so a browser can log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from . import metrics, pages

log = logging.getLogger("mrengine.ui")


def token_of(secret: bytes) -> str:
    """The UI's token for a cluster secret: knowing it does not reveal the secret itself."""
    return hmac.new(secret, b"mrengine web ui", hashlib.sha256).hexdigest()[:32]


def _authorized(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip()).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


class _Routes:
    """Path -> (content type, body) or None for 404; one method per page pair."""

    def __init__(self, source):
        self.source = source

    def route(self, path: str):
        api = path.startswith("/api/")
        rest = path[4:] if api else path
        if rest in ("/", ""):
            rest = "/cluster" if self.source.live else "/jobs"
        if rest == "/metrics" and not api:
            return "text/plain; version=0.0.4; charset=utf-8", metrics.render(self.source.cluster(), self.source.jobs())
        m = re.fullmatch(r"/jobs/([^/]+)/logs/([^/]+)", rest)
        if m:
            text = self.source.log(unquote(m[1]), unquote(m[2]))
            if text is None:
                return None
            return ("application/json", _json({"job": m[1], "attempt": m[2], "log": text})) if api else \
                ("text/plain; charset=utf-8", text)
        if rest == "/cluster":
            data = self.source.cluster()
            return self._page(api, data, lambda: pages.cluster_page(self.source.title, data))
        if rest == "/jobs":
            data = self.source.jobs()
            return self._page(api, data, lambda: pages.jobs_page(self.source.title, data))
        m = re.fullmatch(r"/jobs/([^/]+)", rest)
        if m:
            data = self.source.job(unquote(m[1]))
            return None if data is None else self._page(api, data, lambda: pages.job_page(self.source.title, data))
        return None

    @staticmethod
    def _page(api: bool, data, html):
        return ("application/json", _json(data)) if api else ("text/html; charset=utf-8", html())


def _json(data) -> str:
    return json.dumps(data, default=str)


def _handler(routes: _Routes, token: str | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "mrengine-ui"

        def do_GET(self):
            if token is not None and not _authorized(self.headers.get("Authorization"), token):
                self._send(401, "text/plain", "the mrengine UI needs its token (see docs/OPERATIONS.md)\n",
                           {"WWW-Authenticate": 'Basic realm="mrengine"'})
                return
            try:
                found = routes.route(self.path.split("?", 1)[0])
            except Exception:
                log.exception("UI request %s failed", self.path)
                self._send(500, "text/plain", "internal error; the master's log has the details\n")
                return
            if found is None:
                self._send(404, "text/plain", f"nothing at {self.path}\n")
            else:
                self._send(200, *found)

        def _send(self, status: int, ctype: str, body: str, headers: dict | None = None):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            log.debug("ui %s %s", self.address_string(), fmt % args)

    return Handler


class UIServer:
    """`UIServer(source, host, port, token).start()`; `.url`; `.stop()`. `token` None: no authentication."""

    def __init__(self, source, host: str, port: int, token: str | None):
        self.httpd = ThreadingHTTPServer((host, port), _handler(_Routes(source), token))
        self.httpd.daemon_threads = True
        self.host = host

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.httpd.server_address[1]}/"

    def start(self) -> "UIServer":
        threading.Thread(target=self.httpd.serve_forever, name="ui-http", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_forever(self) -> None:
        self.httpd.serve_forever()
