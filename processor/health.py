"""A tiny HTTP server for the processor: /healthz, /readyz and /metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from infra.observability import metrics_payload


def serve_health(host: str, port: int, unready: Callable[[], Sequence[str]]) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; /readyz answers 503 with the reasons ``unready``
    gives (e.g. ``{"status":"unavailable","reasons":["redis_full"]}``), 200 when none."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, b'{"status":"ok"}', "application/json")
            elif self.path == "/readyz":
                reasons = list(unready())
                body = {"status": "unavailable", "reasons": reasons} if reasons else None
                self._answer(
                    503 if body else 200,
                    orjson.dumps(body) if body else b'{"status":"ready"}',
                    "application/json",
                )
            elif self.path == "/metrics":
                self._answer(200, metrics_payload(), CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b'{"status":"not found"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
