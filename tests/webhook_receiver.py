"""A webhook endpoint for tests: a real HTTP server on 127.0.0.1 that verifies every
request with the independent ``standardwebhooks`` package and records what it got.

Its path chooses the answer: /ok 200, /gone 410, /busy 429 with Retry-After 7,
/broken 500, /redirect 302, /slow no answer for 5 s, /drop hang up without one.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_dGlkaW5ncy10ZXN0LXNpZ25pbmcta2V5LTMyYnl0ZXM="
"""The signing secret every test recipient uses."""


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: object
    """The parsed document when ``standardwebhooks`` verified it, else None."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Received]
    stopping: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test output is not the place for access logs."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            verified = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            verified = None
        self.server.received.append(Received(self.path, headers, body, verified))
        self._answer()

    def _answer(self) -> None:
        if self.path == "/drop":
            self.close_connection = True  # hang up without a status line
            return
        if self.path == "/slow":
            self.server.stopping.wait(5)
            return
        status, extra = {
            "/ok": (200, {}),
            "/gone": (410, {}),
            "/busy": (429, {"Retry-After": "7"}),
            "/broken": (500, {}),
            "/redirect": (302, {"Location": "/target"}),
        }.get(self.path, (200, {}))
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class Receiver:
    """A webhook endpoint on a free port of 127.0.0.1 that records what it gets;
    with ``tls``, it speaks HTTPS."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._server.received = []
        self._server.stopping = threading.Event()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        return list(self._server.received)

    def paths(self) -> list[str]:
        return [request.path for request in self.received]
