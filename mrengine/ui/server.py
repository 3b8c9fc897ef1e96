"""The UI's HTTP server: the standard library's ThreadingHTTPServer.

Routes (each HTML page has a JSON twin under /api; see docs/UI.md):
GET /cluster, /jobs, /jobs/ID, /jobs/ID/logs/ATTEMPT (plain text), /metrics (Prometheus text);
POST /jobs/ID/kill, the job page's kill button.
Off loopback every request needs the token derived from the cluster secret (`token_of`), as a bearer
token or as the password of HTTP basic auth (any user name), so a browser can log in. A browser sends
basic auth to any page that asks, a form posted from another site's page included, so the kill form
also carries a token of this process (`form_token`), which only a page read from this server holds;
and a POST must name this server's own address as its Host, so a DNS name rebound to loopback cannot
reach it either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from ..errors import UsageError
from . import metrics, pages

MAX_FORM_BYTES = 1024

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

    def __init__(self, source, form_token: str):
        self.source = source
        self.form_token = form_token

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
            return None if data is None else self._page(api, data, lambda: pages.job_page(
                self.source.title, data, self.form_token if self.source.live else None))
        return None

    def kill(self, path: str, form: dict) -> str | None:
        """POST /jobs/ID/kill: the job's id once it is killed; None for no such route. Raises UsageError."""
        m = re.fullmatch(r"/jobs/([^/]+)/kill", path)
        if m is None:
            return None
        given = (form.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.form_token.encode()):
            raise PermissionError("the kill form's token is missing or stale: reload the job page and try again")
        job_id = unquote(m[1])
        self.source.kill(job_id)
        return job_id

    @staticmethod
    def _page(api: bool, data, html):
        return ("application/json", _json(data)) if api else ("text/html; charset=utf-8", html())


def _json(data) -> str:
    return json.dumps(data, default=str)


def _handler(routes: _Routes, token: str | None, own_hosts: set[str]):
    class Handler(BaseHTTPRequestHandler):
        server_version = "mrengine-ui"

        def _refused(self) -> bool:
            if token is not None and not _authorized(self.headers.get("Authorization"), token):
                self._send(401, "text/plain", "the mrengine UI needs its token (see docs/OPERATIONS.md)\n",
                           {"WWW-Authenticate": 'Basic realm="mrengine"'})
                return True
            return False

        def do_POST(self):
            if self._refused():
                return
            if own_hosts and self.headers.get("Host", "") not in own_hosts:
                self._send(403, "text/plain", "a POST must be addressed to this server's own host and port\n")
                return
            length = self.headers.get("Content-Length") or "0"
            length = int(length) if length.isdigit() else MAX_FORM_BYTES + 1
            if length > MAX_FORM_BYTES:
                self._send(413, "text/plain", "form too large\n")
                return
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            path = self.path.split("?", 1)[0]
            try:
                job_id = routes.kill(path, form)
            except PermissionError as exc:
                self._send(403, "text/plain", f"{exc}\n")
                return
            except UsageError as exc:
                self._send(409, "text/plain", f"{exc}\n")
                return
            except Exception:
                log.exception("UI request POST %s failed", self.path)
                self._send(500, "text/plain", "internal error; the master's log has the details\n")
                return
            if job_id is None:
                self._send(404, "text/plain", f"nothing to post to at {self.path}\n")
            else:
                log.info("job %s killed from the web UI (%s)", job_id, self.address_string())
                self._send(303, "text/plain", f"job {job_id} killed\n", {"Location": path[:-len("/kill")]})

        def do_GET(self):
            if self._refused():
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
        self.own_hosts: set[str] = set()  # filled once the port is known: the Host a POST must name
        self.httpd = ThreadingHTTPServer((host, port), _handler(_Routes(source, secrets.token_hex(16)), token,
                                                                self.own_hosts))
        self.httpd.daemon_threads = True
        self.host = host
        if token is None:  # loopback: only the names of loopback itself
            port = self.httpd.server_address[1]
            self.own_hosts.update(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))

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
