"""Flood benchmark: collector memory stays bounded while a flood of clients is rate limited.

One collector (1 worker) with a per-IP limit; connections come from distinct loopback source
addresses (127.x.y.z), one request each, so every request is a new client to track. RSS of
the collector is sampled as the number of distinct clients grows past the tracked-client cap
(``TOUCHPATH_RATE_LIMIT_MAX_CLIENTS``, set low here so the plateau shows in a short run), and
one address then floods alone to show the 429s.

Run: ``python bench/flood_bench.py [--clients 60000] [--cap 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import Child, free_port, spawn, start_tansu  # noqa: E402
from infra.kafka import ensure_topics  # noqa: E402
from touchpath.settings import load_settings  # noqa: E402

KEY = "flood-key"
REQUEST = (
    b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Authorization: Basic Zmxvb2Qta2V5Og==\r\nContent-Length: 52\r\nConnection: close\r\n\r\n"
    b'{"type":"track","event":"Flood","userId":"flood-u1"}'
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def address(n: int) -> str:
    return f"127.{1 + n // 65_025 % 250}.{n // 255 % 255}.{1 + n % 254}"


async def one_request(port: int, source: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(REQUEST)
        await writer.drain()
        status = await reader.readline()
        return int(status.split()[1])
    finally:
        writer.close()


async def wave(port: int, sources: list[str], concurrency: int = 64) -> dict[int, int]:
    counts: dict[int, int] = {}
    queue = iter(sources)

    async def worker() -> None:
        for source in queue:
            try:
                status = await one_request(port, source)
            except OSError:
                status = 0
            counts[status] = counts.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def start_collector(env: dict[str, str], logs: Path) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "launcher.cli", "collector", "--workers", "1"]
    env = {**env, "TOUCHPATH_COLLECTOR_PORT": str(port)}
    return spawn("collector", argv, port, logs / "collector-flood.log", env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=60_000)
    parser.add_argument("--cap", type=int, default=20_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "flood.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-flood-bench-"))
    broker = start_tansu(free_port(), work)
    env = {
        "TOUCHPATH_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.port}",
        "TOUCHPATH_WRITE_KEYS": f"{KEY}=flood:web",
        "TOUCHPATH_RATE_LIMIT_PER_IP": "5",
        "TOUCHPATH_RATE_LIMIT_MAX_CLIENTS": str(args.cap),
        "TOUCHPATH_LOG_LEVEL": "ERROR",
    }
    ensure_topics(load_settings(kafka_bootstrap=env["TOUCHPATH_KAFKA_BOOTSTRAP"]))
    collector = start_collector(env, work)
    samples: list[dict[str, Any]] = []
    try:
        pid = collector.process.pid
        asyncio.run(wave(collector.port, [address(n) for n in range(200)]))  # warm up
        samples.append({"clients": 0, "rss_mb": round(rss_mb(pid), 1)})
        step = args.clients // 6
        statuses: dict[int, int] = {}
        started = time.perf_counter()
        for done in range(step, args.clients + 1, step):
            counts = asyncio.run(
                wave(collector.port, [address(n) for n in range(done - step, done)])
            )
            for status, count in counts.items():
                statuses[status] = statuses.get(status, 0) + count
            samples.append({"clients": done, "rss_mb": round(rss_mb(pid), 1)})
            print(f"{done:>7} distinct clients  rss {samples[-1]['rss_mb']:.1f} MB", flush=True)
        elapsed = time.perf_counter() - started
        alone = asyncio.run(wave(collector.port, ["127.9.9.9"] * 2000, concurrency=32))
    finally:
        collector.stop()
        broker.stop()
    at_cap = [s["rss_mb"] for s in samples if s["clients"] >= args.cap]
    results = {
        "distinct_clients": args.clients,
        "tracked_client_cap": args.cap,
        "requests_per_s": round(args.clients / elapsed),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rss_samples": samples,
        "rss_growth_after_cap_mb": round(max(at_cap) - min(at_cap), 1) if at_cap else None,
        "one_address_2000_requests": {str(k): v for k, v in sorted(alone.items())},
    }
    print(json.dumps(results, indent=2))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
