"""A small HTTP/1.1 keep-alive load generator (asyncio streams), for the benchmarks.

``run_load(host, port, paths, clients, seconds, headers, bodies=…)`` spreads ``clients``
connections over worker processes, each connection sending requests back to back (GET, or
POST of a random body from ``bodies``), and returns requests/s and latency percentiles.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections.abc import Sequence

CRLF = "\r\n"


def _request(host: str, path: str, headers: str, body: bytes | None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1{CRLF}Host: {host}{CRLF}{headers}{CRLF}".encode()
    head = (
        f"POST {path} HTTP/1.1{CRLF}Host: {host}{CRLF}{headers}"
        f"Content-Type: application/json{CRLF}Content-Length: {len(body)}{CRLF}{CRLF}"
    )
    return head.encode() + body


async def _client(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: str,
    until: float,
    latencies: list[float],
    errors: list[int],
    bodies: Sequence[bytes] | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    rnd = random.Random()
    try:
        while time.perf_counter() < until:
            path = paths[rnd.randrange(len(paths))]
            body = bodies[rnd.randrange(len(bodies))] if bodies else None
            started = time.perf_counter()
            writer.write(_request(host, path, headers, body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors.append(1)
    finally:
        writer.close()


Job = tuple[str, int, Sequence[str], int, float, str, Sequence[bytes] | None]


def _worker(job: Job) -> tuple[list[float], int]:
    host, port, paths, clients, seconds, headers, bodies = job

    async def main() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors: list[int] = []
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                _client(host, port, paths, headers, until, latencies, errors, bodies)
                for _ in range(clients)
            )
        )
        return latencies, len(errors)

    return asyncio.run(main())


def run_load(
    host: str,
    port: int,
    paths: Sequence[str],
    clients: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    processes: int = 2,
    bodies: Sequence[bytes] | None = None,
) -> dict[str, float]:
    """Requests/s, p50/p99 latency (ms) and error count for ``clients`` connections."""
    header_text = "".join(f"{k}: {v}{CRLF}" for k, v in (headers or {}).items())
    processes = max(1, min(processes, clients))
    shares = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    jobs: list[Job] = [
        (host, port, list(paths), n, seconds, header_text, list(bodies) if bodies else None)
        for n in shares
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_worker, jobs)
    latencies = sorted(v for lat, _ in results for v in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": errors}
    return {
        "rps": round(len(latencies) / seconds),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "errors": errors,
    }
