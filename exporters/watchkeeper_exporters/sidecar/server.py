"""HTTP(S) server for ``/metrics`` (optionally basic-auth protected) and ``/healthz``."""

from __future__ import annotations

import base64
import binascii
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .exporter import Exporter
from .webconfig import WebConfig

log = logging.getLogger("watchkeeper_exporter")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Prometheus sends its scrape_timeout with every scrape; targets must answer before it.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
#: Part of the scraper's timeout kept for rendering and sending the answer.
_MARGIN_FRACTION, _MIN_MARGIN, _MIN_BUDGET = 0.1, 0.2, 0.05


def scrape_budget(header: str | None) -> float | None:
    """Seconds the targets may take so the answer arrives before the scraper gives up:
    its timeout less 10 % (at least 0.2 s); None without a (valid) header."""
    try:
        timeout = float(header) if header else 0.0
    except ValueError:
        return None
    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        return None
    return max(_MIN_BUDGET, timeout - max(_MIN_MARGIN, timeout * _MARGIN_FRACTION))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30  # a client that connects and says nothing must not hold a thread forever
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/metrics":
            if not self._authorized():
                self._reply(401, b"unauthorized\n",
                            {"WWW-Authenticate": 'Basic realm="watchkeeper-exporter"'})
                return
            budget = scrape_budget(self.headers.get(SCRAPE_TIMEOUT_HEADER))
            self._reply(200, self.server.exporter.render(budget), {"Content-Type": CONTENT_TYPE})
        else:
            self._reply(404, b"not found; try /metrics\n")

    def _authorized(self) -> bool:
        web = self.server.web
        if not web.users:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return web.authorized(user, password)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are noise at one scrape per interval; errors are logged elsewhere."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporter: Exporter, web: WebConfig) -> None:
        self.exporter = exporter
        self.web = web
        super().__init__(address, _Handler)
        if web.tls is not None:
            # Handshake lazily in the request thread, so a silent client cannot block accept().
            self.socket = web.tls.wrap_socket(self.socket, server_side=True,
                                              do_handshake_on_connect=False)


def make_server(address: tuple[str, int], exporter: Exporter, web: WebConfig) -> _Server:
    return _Server(address, exporter, web)
