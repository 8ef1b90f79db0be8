"""Collector benchmark: accepted events/s through HTTP into the embedded broker (acks=all).

Measures (a) one event per request and (b) batches of 100 events, with 1 and 2 collector
workers, the p99 of a 100-event batch request at 16 concurrent clients, and — in the same
run, on the same broker — a bare kafka-python producer writing the same events one record
each (the naive limit the record-per-request layout is designed to beat).

Run: ``python bench/collector_bench.py [--seconds 10] [--sustain 60]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import run_load  # noqa: E402

from infra.embedded import Child, free_port, spawn, start_tansu  # noqa: E402
from infra.kafka import ensure_topics  # noqa: E402
from touchpath.settings import load_settings  # noqa: E402

KEY = "bench-key"


def event(i: int) -> dict[str, Any]:
    """A ~200-byte track event."""
    return {
        "type": "track",
        "userId": f"user-{i % 5000}",
        "event": "Product Viewed",
        "messageId": uuid.uuid4().hex,
        "properties": {"sku": f"SKU-{i % 997}", "price": 19.9},
        "timestamp": "2026-11-24T10:00:00.000Z",
    }


def bodies(per_request: int, count: int = 200) -> list[bytes]:
    if per_request == 1:
        return [orjson.dumps(event(i)) for i in range(count)]
    return [
        orjson.dumps({"batch": [event(i * per_request + j) for j in range(per_request)]})
        for i in range(count)
    ]


def naive_producer(bootstrap: str, topic: str, seconds: float) -> float:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    values = [orjson.dumps(event(i)) for i in range(10_000)]
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for value in values[:2000]:
            producer.send(topic, value)
        sent += 2000
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return sent / elapsed


def start_collector(env: dict[str, str], workers: int, logs: Path) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "launcher.cli", "collector", "--workers", str(workers)]
    return spawn(
        "collector",
        argv,
        port,
        logs / f"collector-{workers}.log",
        {**env, "TOUCHPATH_COLLECTOR_PORT": str(port)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sustain", type=float, default=0, help="extra sustained batch run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "collector.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-collector-bench-"))
    broker = start_tansu(free_port(), work)
    env = {
        "TOUCHPATH_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.port}",
        "TOUCHPATH_WRITE_KEYS": f"{KEY}=bench:web",
        "TOUCHPATH_LOG_LEVEL": "WARNING",
    }
    ensure_topics(load_settings(kafka_bootstrap=env["TOUCHPATH_KAFKA_BOOTSTRAP"]))
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(f"{KEY}:".encode()).decode()}
    results: dict[str, Any] = {}
    try:
        results["naive_producer_records_per_s"] = round(
            naive_producer(env["TOUCHPATH_KAFKA_BOOTSTRAP"], "bench.naive", args.seconds)
        )
        for workers in (1, 2):
            collector = start_collector(env, workers, work)
            try:
                single = run_load(
                    "127.0.0.1",
                    collector.port,
                    ["/v1/track"],
                    32,
                    args.seconds,
                    auth,
                    bodies=bodies(1),
                )
                batch = run_load(
                    "127.0.0.1",
                    collector.port,
                    ["/v1/batch"],
                    16,
                    args.seconds,
                    auth,
                    bodies=bodies(100, 50),
                )
                results[f"workers_{workers}"] = {
                    "single_event_requests_per_s": single["rps"],
                    "single_event_p99_ms": single["p99_ms"],
                    "batch100_events_per_s": batch["rps"] * 100,
                    "batch100_p50_ms_16_clients": batch["p50_ms"],
                    "batch100_p99_ms_16_clients": batch["p99_ms"],
                    "errors": single["errors"] + batch["errors"],
                }
                if args.sustain and workers == 2:
                    sustained = run_load(
                        "127.0.0.1",
                        collector.port,
                        ["/v1/batch"],
                        16,
                        args.sustain,
                        auth,
                        bodies=bodies(100, 50),
                    )
                    results["sustained_batch100_events_per_s"] = sustained["rps"] * 100
                    results["sustained_seconds"] = args.sustain
            finally:
                collector.stop()
    finally:
        broker.stop()
    naive = results["naive_producer_records_per_s"]
    for workers in (1, 2):
        row = results[f"workers_{workers}"]
        row["batch_vs_naive_ratio"] = round(row["batch100_events_per_s"] / naive, 2)
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
