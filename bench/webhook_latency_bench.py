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
import json
import statistics
import sys
import tempfile
import threading
import time
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


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default 5 drops concurrent SYNs: 1 s retransmit stalls
    daemon_threads = True


class Receiver:
    """Records when each customer's purchase webhook arrived (and that it verifies)."""

    def __init__(self) -> None:
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
                    if identity.startswith("user_id:lat-"):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "webhook_latency.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-webhook-bench-"))
    broker = start_tansu(free_port(), work)
    redis = start_redis(free_port(), work / "redis", work)
    env = stack_env(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis.port}/0")
    names = ("collector", "processor", "api", "webhooks")
    children = [start_service(name, env, work) for name in names]
    collector, _, api, _ = (f"http://127.0.0.1:{c.port}" for c in children)
    receiver = Receiver()
    sent: dict[str, float] = {}
    try:
        subscription = httpx.post(
            f"{api}/v1/subscriptions",
            json={"url": receiver.url, "stages": ["purchase"]},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).json()
        receiver.secret = subscription["secret"]
        warm = {"type": "track", "userId": "warm-up", "event": "Order Completed"}
        httpx.post(f"{collector}/v1/track", json=warm, auth=(WRITE_KEY, ""))
        time.sleep(2)  # let the consumer group settle before measuring
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=10) as client:
            started = time.perf_counter()
            for i in range(args.customers):
                time.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
                user = f"lat-{i}"
                sent[user] = time.perf_counter()
                event = {"type": "track", "userId": user, "event": "Order Completed"}
                assert client.post(f"{collector}/v1/track", json=event).status_code == 200
        deadline = time.monotonic() + 30
        while len(receiver.arrived) < args.customers and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for child in reversed(children):
            child.stop()
        redis.stop()
        broker.stop()
        receiver.server.shutdown()
    latencies = [receiver.arrived[u] - sent[u] for u in sent if u in receiver.arrived]
    ms = [round(1000 * v, 1) for v in latencies]
    results: dict[str, Any] = {
        "customers": args.customers,
        "rate_per_s": args.rate,
        "delivered": len(ms),
        "lost": args.customers - len(ms),
        "bad_signatures": receiver.bad_signatures,
        "p50_ms": percentile(ms, 0.50) if ms else None,
        "p95_ms": percentile(ms, 0.95) if ms else None,
        "p99_ms": percentile(ms, 0.99) if ms else None,
        "max_ms": max(ms) if ms else None,
        "mean_ms": round(statistics.mean(ms), 1) if ms else None,
        "target_p99_ms": 1000,
    }
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
