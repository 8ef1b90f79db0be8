"""One delivery attempt against a real local HTTP server: outcomes, refused destinations,
the Host header kept when connecting to the checked address, the total deadline and the cap
on how much of an answer is read."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dispatcher.delivery import Deliverer
from touchpath.destinations import parse_networks

LOOPBACK = parse_networks("127.0.0.0/8,::1")


class Handler(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        Handler.hosts.append(self.headers["host"])
        if self.path == "/drip":  # a byte a second, for 30 s
            self.send_response(200)
            self.send_header("content-length", "30")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(1)
        elif self.path == "/huge":  # 50 MB that nobody should wait for
            self.send_response(200)
            self.send_header("content-length", str(50 * 2**20))
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x" * 2**20)
        else:
            self.send_response(int(self.path.strip("/") or 204))
            self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def post(url: str, allowed: tuple = LOOPBACK, deadline_s: float = 2.0) -> tuple[str | None, float]:
    async def attempt() -> tuple[str | None, float]:
        deliverer = Deliverer(allowed, deadline_s, 4)
        started = time.monotonic()
        try:
            outcome = await deliverer.post(url, b"{}", {"content-type": "application/json"})
        finally:
            await deliverer.aclose()
        return outcome, time.monotonic() - started

    return asyncio.run(attempt())


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ("/204", None),
        ("/200", None),
        ("/301", "http_3xx"),
        ("/404", "http_4xx"),
        ("/503", "http_5xx"),
    ],
)
def test_outcomes_are_coarse(port: int, path: str, outcome: str | None) -> None:
    assert post(f"http://127.0.0.1:{port}{path}")[0] == outcome


def test_names_connect_to_the_checked_address_and_keep_their_host_header(port: int) -> None:
    assert post(f"http://localhost:{port}/204")[0] is None
    assert Handler.hosts[-1] == f"localhost:{port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/204",
        "http://localhost:{port}/204",
        "http://2130706433:{port}/204",
        "http://0x7f.1:{port}/204",
        "http://[::ffff:127.0.0.1]:{port}/204",
    ],
)
def test_loopback_is_refused_without_the_allow_list(port: int, url: str) -> None:
    before = len(Handler.hosts)
    assert post(url.format(port=port), allowed=())[0] == "blocked_destination"
    assert len(Handler.hosts) == before  # nothing was sent


def test_no_connection_is_refused(port: int) -> None:
    assert post("http://127.0.0.1:1/")[0] == "refused"


def test_an_answer_dripping_for_30_s_ends_at_the_total_deadline(port: int) -> None:
    outcome, took = post(f"http://127.0.0.1:{port}/drip", deadline_s=2.0)
    assert outcome == "timeout" and took < 2.0 + 1.0


def test_a_huge_answer_is_not_read(port: int) -> None:
    outcome, took = post(f"http://127.0.0.1:{port}/huge", deadline_s=5.0)
    assert outcome is None and took < 2.0
