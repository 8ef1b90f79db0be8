"""Behind a reverse proxy, and against slow clients (issue #18).

* The client address is the proxy's ``X-Forwarded-For`` only when the proxy is trusted
  (``TOUCHPATH_TRUSTED_PROXIES``): ``context.ip`` and the per-IP rate limit follow it.
* analytics-next's settings name the collector by ``TOUCHPATH_PUBLIC_URL`` (https behind TLS),
  never by the request's ``Host`` header.
* A client that connects and sends nothing, trickles its headers or sends less body than it
  announced is cut after the header/body timeout (the issue kept 300 such connections open).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.embedded import Child
from tests.e2e.conftest import WRITE_KEY, read_topic, stack_env, start_service

AUTH = (WRITE_KEY, "")
TIMEOUT_S = 1.0


@pytest.fixture
def start(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator:
    """Start a collector with extra settings; stopped afterwards."""
    started: list[Child] = []

    def run(**extra: str) -> tuple[str, dict[str, str]]:
        env = stack_env(bootstrap, redis_url, **extra)
        started.append(start_service("collector", env, run_dir))
        return f"http://127.0.0.1:{started[-1].port}", env

    yield run
    for child in started:
        child.stop()


def track(url: str, forwarded: str, user: str) -> int:
    headers = {"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"}
    body = {"userId": user, "event": "Product Viewed"}
    return httpx.post(f"{url}/v1/track", json=body, auth=AUTH, headers=headers).status_code


@pytest.mark.parametrize("trusted", [True, False])
def test_client_address_comes_from_a_trusted_proxy_only(
    start, bootstrap: str, trusted: bool
) -> None:
    proxies = {"TOUCHPATH_TRUSTED_PROXIES": "127.0.0.1/32"} if trusted else {}
    url, env = start(TOUCHPATH_RATE_LIMIT_PER_IP="1", **proxies)  # a burst of 2 per address
    statuses = [track(url, f"203.0.113.{i}", f"proxied-{i}") for i in range(1, 6)]
    if trusted:  # five clients behind the proxy: five buckets
        assert statuses == [200] * 5
    else:  # the header is anyone's to send: one bucket, the proxy's
        assert statuses[:2] == [200, 200] and 429 in statuses
    events = read_topic(bootstrap, env["TOUCHPATH_TOPIC_TOUCHPOINTS"], statuses.count(200))
    ips = {e["events"][0]["context"]["ip"] for e in events}
    if trusted:
        assert ips == {f"203.0.113.{i}" for i in range(1, 6)}
    else:
        assert ips == {"127.0.0.1"}


def test_analytics_settings_name_the_public_url_never_the_host_header(start) -> None:
    url, _ = start(TOUCHPATH_PUBLIC_URL="https://t.example.com/collect/")
    answer = httpx.get(f"{url}/v1/projects/{WRITE_KEY}/settings", headers={"Host": "evil.test"})
    segment = answer.json()["integrations"]["Segment.io"]
    assert (segment["apiHost"], segment["protocol"]) == ("t.example.com/collect/v1", "https")


def test_without_a_public_url_the_listening_address_not_the_host_header(collector: str) -> None:
    answer = httpx.get(
        f"{collector}/v1/projects/{WRITE_KEY}/settings", headers={"Host": "evil.test"}
    )
    segment = answer.json()["integrations"]["Segment.io"]
    assert segment["apiHost"] == collector.removeprefix("http://") + "/v1"
    assert "evil" not in answer.text


# --- slow clients ---------------------------------------------------------------------------


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bytes:
    """Read until the server closes (sending ``trickle`` a byte every 0.2 s meanwhile);
    returns what it answered. Fails if it is still open after ``seconds``."""
    answer = b""
    deadline = time.monotonic() + seconds
    pending = iter(trickle)
    while time.monotonic() < deadline:
        byte = next(pending, None)
        if byte is not None:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return answer
        sock.settimeout(0.2)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return answer
        if not chunk:
            return answer
        answer += chunk
    raise AssertionError(f"still open after {seconds} s")


@pytest.fixture
def guarded(start) -> str:
    url, _ = start(
        TOUCHPATH_HTTP_HEADER_TIMEOUT_S=str(TIMEOUT_S),
        TOUCHPATH_HTTP_BODY_TIMEOUT_S=str(TIMEOUT_S),
        TOUCHPATH_HTTP_MAX_HEADER_BYTES="4096",
    )
    return url


def test_half_open_clients_are_cut(guarded: str) -> None:
    silent = [connect(guarded) for _ in range(200)]  # connect and send nothing
    started = time.monotonic()
    for sock in silent:
        answer = closed_within(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408")
        sock.close()
    assert time.monotonic() - started < 10
    # and the collector still answers
    ok = httpx.post(f"{guarded}/v1/track", json={"userId": "u", "event": "x"}, auth=AUTH)
    assert ok.status_code == 200


def test_trickled_headers_are_cut(guarded: str) -> None:
    sock = connect(guarded)
    sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
    answer = closed_within(sock, 10, trickle=b"X-Slow: " + b"a" * 100)  # 20 s at 5 B/s
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_body_shorter_than_announced_is_cut(guarded: str) -> None:
    sock = connect(guarded)
    sock.sendall(
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"userId":'
    )
    answer = closed_within(sock, 10, trickle=b'"' + b"a" * 100)
    assert answer.startswith(b"HTTP/1.1 408")


def test_oversized_headers_are_refused(guarded: str) -> None:
    sock = connect(guarded)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert closed_within(sock, 10).startswith(b"HTTP/1.1 431")


def test_a_slow_but_timely_client_is_served(guarded: str) -> None:
    sock = connect(guarded)
    body = b'{"userId":"slow","event":"x"}'
    key = base64.b64encode(f"{WRITE_KEY}:".encode())
    sock.sendall(
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Basic " + key + b"\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    for start in range(0, len(body) - 10, 10):  # in pieces, 0.2 s apart: within the deadline
        sock.sendall(body[start : start + 10])
        sock.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            raise AssertionError(f"answered or cut early: {sock.recv(4096)!r}")
    sock.sendall(body[start + 10 :])
    sock.settimeout(10)
    answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_the_head_bound_does_not_count_the_body(guarded: str) -> None:
    big = {"userId": "big", "event": "x", "properties": {"note": "n" * 20_000}}  # > 4096
    assert httpx.post(f"{guarded}/v1/track", json=big, auth=AUTH).status_code == 200
