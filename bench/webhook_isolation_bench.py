"""Webhook isolation: a receiver that drips its answer must not slow another one down.

One stack on loopback (as in ``webhook_latency_bench.py``) and a healthy receiver subscribed
to every `purchase` change. Two phases, one after the other in the same run:

1. ``alone``: customers post one `Order Completed` each at a steady rate; the latency of each
   is the time from its POST to its delivery at the healthy receiver;
2. ``next_to_dripping``: a second subscription to the same changes points at a receiver that
   answers `200` and then one body byte a second for 60 s, so every attempt to it runs into
   the attempt's deadline (`TOUCHPATH_WEBHOOK_TIMEOUT_S`, 5 s) and is retried; the same load
   again, and the healthy receiver's latency is measured the same way.

Target: every healthy delivery arrives (within 30 s of the last send) and the healthy p99 of
phase 2 is within 1.5 times that of phase 1 and under 1 s.

Run: ``python bench/webhook_isolation_bench.py [--customers 300] [--rate 50]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from webhook_latency_bench import (
    ROOT,
    Receiver,
    _Server,
    buy_at_rate,
    latency_figures,
    stack,
    subscribe,
    wait_arrivals,
)

DRIP_S = 60


class DrippingReceiver:
    """Answers 200, then one byte a second; records each attempt's start and how long the
    dispatcher stayed before hanging up."""

    def __init__(self) -> None:
        self.attempts = 0
        self.held_s: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                started = time.monotonic()
                self.send_response(200)
                self.send_header("content-length", str(DRIP_S))
                self.end_headers()
                try:
                    for _ in range(DRIP_S):
                        self.wfile.write(b".")
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    receiver.held_s.append(time.monotonic() - started)

            def log_message(self, *_: object) -> None:
                return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drip"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300, help="per phase")
    parser.add_argument("--rate", type=float, default=50, help="events per second")
    out = ROOT / "bench" / "results" / "webhook_isolation.json"
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-isolation-bench-"))
    healthy, dripping = Receiver("iso-"), DrippingReceiver()
    try:
        with stack(work) as (collector, api):
            healthy.secret = subscribe(api, healthy.url)
            buy_at_rate(collector, ["warm-up"], 1)
            time.sleep(2)  # let the consumer group settle before measuring
            users = [f"iso-alone-{i}" for i in range(args.customers)]
            sent_alone = buy_at_rate(collector, users, args.rate)
            wait_arrivals(healthy, args.customers)
            subscribe(api, dripping.url)
            users = [f"iso-beside-{i}" for i in range(args.customers)]
            sent_beside = buy_at_rate(collector, users, args.rate)
            wait_arrivals(healthy, 2 * args.customers)
    finally:
        healthy.server.shutdown()
        dripping.server.shutdown()
    phases = {
        "alone": latency_figures(healthy, sent_alone),
        "next_to_dripping": latency_figures(healthy, sent_beside),
    }
    p99 = [phases[p]["p99_ms"] for p in phases]
    complete = all(phases[p]["lost"] == 0 for p in phases)  # a p99 of what arrived is no p99
    ratio = round(p99[1] / p99[0], 2) if complete and all(p99) else None
    results: dict[str, Any] = {
        "customers_per_phase": args.customers,
        "rate_per_s": args.rate,
        **phases,
        "p99_ratio": ratio,
        "target_met": ratio is not None and ratio <= 1.5 and p99[1] < 1000,
        "dripping_receiver": {
            "drip_s": DRIP_S,
            "attempts": dripping.attempts,
            "cut_after_s_max": round(max(dripping.held_s), 1) if dripping.held_s else None,
        },
        "target": "next_to_dripping p99 within 1.5x of alone, and < 1000 ms",
    }
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
