"""A local Alertmanager webhook receiver: records (and optionally prints) every notification.

    python examples/demo/webhook.py --port 9095      # POST /page and /ticket print a line each

The path is the receiver (``/page`` for critical, ``/ticket`` for warning in the generated
routing), so what reaches whom is visible. ``tests/e2e`` runs it in-process and reads
:attr:`WebhookReceiver.received`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notified:
    """One alert inside one webhook notification."""

    at: float                 # time.time() when received
    receiver: str             # path without the slash: page | ticket
    status: str               # firing | resolved
    labels: dict[str, str]
    group: str = ""           # Alertmanager's groupKey of the notification (route + group)

    def key(self) -> tuple[str, str, str]:
        """(service, signal, severity); ``slo:<name>`` as the signal of an SLO's alerts."""
        slo = self.labels.get("slo")
        return (self.labels.get("service", ""),
                f"slo:{slo}" if slo else self.labels.get("signal", ""),
                self.labels.get("severity", ""))


@dataclass
class WebhookReceiver:
    """ThreadingHTTPServer on 127.0.0.1 collecting :class:`Notified` entries."""

    port: int = 0
    echo: bool = False
    received: list[Notified] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.record(self.path.strip("/") or "default", json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, receiver: str, payload: dict[str, Any]) -> None:
        now = time.time()
        group = payload.get("groupKey", "")
        entries = [Notified(now, receiver, alert.get("status", ""), alert.get("labels", {}),
                            group) for alert in payload.get("alerts", [])]
        with self.lock:
            self.received.extend(entries)
        if self.echo:
            for entry in entries:
                labels = entry.labels
                print(f"[{time.strftime('%H:%M:%S')}] {entry.receiver:6} {entry.status:8} "
                      f"{labels.get('alertname')} service={labels.get('service')} "
                      f"signal={labels.get('signal')} severity={labels.get('severity')}",
                      flush=True)

    def since(self, start: float) -> list[Notified]:
        with self.lock:
            return [entry for entry in self.received if entry.at >= start]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(args.port, echo=True).start()
    print(f"webhook receiver on {receiver.url}/page and {receiver.url}/ticket", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
