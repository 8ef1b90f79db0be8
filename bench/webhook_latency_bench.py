"""Webhook latency: from an event reaching the collector to the stage-change webhook arriving.

A whole stack on loopback (embedded tansu broker, a private redis-server, collector,
processor, API and the webhook dispatcher) and a local receiver subscribed through the API to
every `purchase` change. Customers post one `Order Completed` each at a steady rate; the
latency of a customer is the time from its POST being sent to its signed delivery being
received (both clocks are this machine's). Target: p99 < 1 s.

Run: ``python bench/webhook_latency_bench.py [--customers 600] [--rate 50]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import free_port, start_redis, start_tansu  # noqa: E402
from tests.e2e.conftest import ADMIN_TOKEN, WRITE_KEY, stack_env, start_service  # noqa: E402
from touchpath.signatures import verify_standard  # noqa: E402

SERVICES = ("collector", "processor", "api", "webhooks")


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default 5 drops concurrent SYNs: 1 s retransmit stalls
    daemon_threads = True


class Receiver:
    """Records when each customer's purchase webhook arrived (and that it verifies)."""

    def __init__(self, prefix: str = "lat-") -> None:
        self.arrived: dict[str, float] = {}
        self.secret = ""
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.perf_counter()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verify_standard(receiver.secret, headers, body, time.time())
                except ValueError:
                    receiver.bad_signatures += 1
                change = orjson.loads(body)["data"]
                for identity in change["identities"]:
                    if identity.startswith(f"user_id:{prefix}"):
                        receiver.arrived.setdefault(identity.removeprefix("user_id:"), now)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def stack(work: Path) -> Iterator[tuple[str, str]]:
    """Broker, Redis and the four services on loopback; yields the collector and API URLs.
    The receivers are local, so loopback is an allowed webhook destination here."""
    broker = start_tansu(free_port(), work)
    redis = start_redis(free_port(), work / "redis", work)
    env = stack_env(
        f"127.0.0.1:{broker.port}",
        f"redis://127.0.0.1:{redis.port}/0",
        TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    children = [start_service(name, env, work) for name in SERVICES]
    try:
        yield f"http://127.0.0.1:{children[0].port}", f"http://127.0.0.1:{children[2].port}"
    finally:
        for child in reversed(children):
            child.stop()
        redis.stop()
        broker.stop()


def subscribe(api: str, url: str) -> str:
    """Subscribe ``url`` to every purchase; returns the secret."""
    answer = httpx.post(
        f"{api}/v1/subscriptions",
        json={"url": url, "stages": ["purchase"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["secret"])


def buy_at_rate(collector: str, users: list[str], rate: float) -> dict[str, float]:
    """One Order Completed per user at ``rate`` per second; when each was sent."""
    sent: dict[str, float] = {}
    with httpx.Client(auth=(WRITE_KEY, ""), timeout=10) as client:
        started = time.perf_counter()
        for i, user in enumerate(users):
            time.sleep(max(0.0, started + i / rate - time.perf_counter()))
            sent[user] = time.perf_counter()
            event = {"type": "track", "userId": user, "event": "Order Completed"}
            assert client.post(f"{collector}/v1/track", json=event).status_code == 200
    return sent


def wait_arrivals(receiver: Receiver, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.arrived) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def latency_figures(receiver: Receiver, sent: dict[str, float]) -> dict[str, Any]:
    """Delivered, lost and latency percentiles (ms) of the users in ``sent``."""
    latencies = [receiver.arrived[u] - sent[u] for u in sent if u in receiver.arrived]
    ms = [round(1000 * v, 1) for v in latencies]
    return {
        "delivered": len(ms),
        "lost": len(sent) - len(ms),
        "bad_signatures": receiver.bad_signatures,
        "p50_ms": percentile(ms, 0.50) if ms else None,
        "p95_ms": percentile(ms, 0.95) if ms else None,
        "p99_ms": percentile(ms, 0.99) if ms else None,
        "max_ms": max(ms) if ms else None,
        "mean_ms": round(statistics.mean(ms), 1) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "webhook_latency.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-webhook-bench-"))
    receiver = Receiver()
    try:
        with stack(work) as (collector, api):
            receiver.secret = subscribe(api, receiver.url)
            warm = {"type": "track", "userId": "warm-up", "event": "Order Completed"}
            httpx.post(f"{collector}/v1/track", json=warm, auth=(WRITE_KEY, ""))
            time.sleep(2)  # let the consumer group settle before measuring
            users = [f"lat-{i}" for i in range(args.customers)]
            sent = buy_at_rate(collector, users, args.rate)
            wait_arrivals(receiver, args.customers)
    finally:
        receiver.server.shutdown()
    results: dict[str, Any] = {
        "customers": args.customers,
        "rate_per_s": args.rate,
        **latency_figures(receiver, sent),
        "target_p99_ms": 1000,
    }
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
