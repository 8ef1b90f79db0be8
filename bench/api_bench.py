"""API benchmark: 100,000 customers in a private Redis; stage look-ups under load; funnel time.

The customers are written straight into Redis with the processor's layout (profiles, look-ups,
stage indexes, funnel rows; pipelined, much faster than going through Kafka). Then, on this
one machine:

* the API (``touchpath api``: one uvicorn worker, uvloop + httptools) answers
  ``GET /v1/customers/{id}/stage`` for random user and anonymous ids, with 64 then 4
  concurrent keep-alive clients;
* the ceiling, in the same run and with the same load generator: a bare FastAPI GET returning
  a constant on uvicorn (uvloop + httptools, one worker);
* ``GET /v1/funnel`` over all customers: the first call after start-up, then the median of
  11 calls (each reads the whole ``P:funnel`` hash from Redis and computes from scratch).

The load generator is ``wrk`` when installed (``apt-get install -y wrk``), else
``bench/loadgen.py`` (processes of asyncio raw HTTP/1.1 keep-alive clients; it costs more
CPU, which this 2-core machine then takes from the servers).

Run: ``python bench/api_bench.py [--customers 100000] [--seconds 10]``; prints a table and
writes ``bench/results/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("awareness", "consideration", "decision", "purchase", "post-purchase")
TOKEN = "bench-token"
START_MS = 1_767_225_600_000  # 2026-01-01
DAY_MS = 86_400_000
TARGETS = {"rps_64": 5000, "p99_ms_64": 20.0, "p99_ms_4": 5.0, "funnel_ms": 200.0}


def load_customers(redis_url: str, prefix: str, count: int) -> None:
    """Write ``count`` customers with the processor's key layout, 5,000 per pipeline."""
    import redis

    from store.codecs import encode_funnel_row, encode_profile
    from store.keys import Keys

    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url)
    rnd = random.Random(1)
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + 5000)):
            profile = _profile(i, rnd)
            cid = profile["id"]
            pipe.set(keys.customer(cid), encode_profile(profile))
            for identity in profile["identities"]:
                pipe.set(keys.customer_of(identity), cid)
            for stage, (at_ms, _, _) in profile["history"].items():
                pipe.zadd(keys.reached(stage), {cid: at_ms})
            entered = profile["history"][profile["stage"]][0]
            pipe.zadd(keys.stage(profile["stage"]), {cid: entered})
            pipe.hset(keys.funnel, cid, encode_funnel_row(profile))
        pipe.execute()
    client.close()


def _profile(i: int, rnd: random.Random) -> dict[str, Any]:
    reached = rnd.randrange(1, len(STAGES) + 1)
    at = START_MS + rnd.randrange(0, 90 * DAY_MS)
    history = {}
    for stage in STAGES[:reached]:
        history[stage] = [at, f"m{i}-{stage}", rnd.choice(("web", "email", "chat", "ads"))]
        at += rnd.randrange(3_600_000, 5 * DAY_MS)
    purchased = reached >= STAGES.index("purchase") + 1
    return {
        "id": f"cus_{i:010d}",
        "identities": [f"user_id:u{i}", f"anonymous_id:a{i}"],
        "stage": STAGES[reached - 1],
        "history": history,
        "first_touch": {
            "at_ms": history["awareness"][0],
            "channel": history["awareness"][2],
            "campaign": rnd.choice(("spring", "summer", None)),
        },
        "traits": {"plan": rnd.choice(("free", "pro")), "email": f"u{i}@example.com"},
        "orders": 1 if purchased else 0,
        "revenue": float(rnd.randrange(10, 500)) if purchased else 0.0,
        "refused_ties": [],
    }


def _spawn(name: str, argv: list[str], port: int, logs: Path, env: dict[str, str]) -> Any:
    from infra.embedded import spawn

    return spawn(name, argv, port, logs / f"{name}.log", env)


def start_api(redis_url: str, prefix: str, port: int, logs: Path) -> Any:
    """``touchpath api`` (one worker; uvloop and httptools are its defaults)."""
    env = {
        "TOUCHPATH_REDIS_URL": redis_url,
        "TOUCHPATH_REDIS_PREFIX": prefix,
        "TOUCHPATH_API_PORT": str(port),
        "TOUCHPATH_API_WORKERS": "1",
        "TOUCHPATH_API_TOKENS": f"{TOKEN}=read",
        "TOUCHPATH_LOG_LEVEL": "WARNING",
    }
    return _spawn("api", [sys.executable, "-m", "launcher.cli", "api"], port, logs, env)


def start_bare(port: int, logs: Path) -> Any:
    """The ceiling: this file's bare FastAPI app on uvicorn, one worker."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
    return _spawn("bare", argv, port, logs, {})


def serve_bare(port: int) -> None:
    """A FastAPI GET returning a constant, served like the API (uvloop + httptools)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/customers/{identifier}/stage")
    async def stage(identifier: str) -> dict[str, str]:
        return {"customer_id": "cus_0000000001", "stage": "decision"}

    uvicorn.run(
        app, port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


# -- load generation ----------------------------------------------------------------------

_WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, latency.max, latency.mean))
end
"""


def run_wrk(port: int, paths: list[str], clients: int, seconds: float, work: Path) -> dict:
    """Requests/s, p50/p99 (ms) and errors from ``wrk`` with ``clients`` connections."""
    (work / "paths.txt").write_text("\n".join(paths) + "\n")
    script = work / "bench.lua"
    script.write_text(_WRK_SCRIPT % {"paths": work / "paths.txt", "token": TOKEN})
    threads = min(2, clients)
    argv = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "-s", str(script)]
    out = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not found:
        raise RuntimeError(f"unexpected wrk output: {out}")
    requests, duration_us, p50_us, p99_us, errors = map(int, found.groups())
    return {
        "rps": round(requests / (duration_us / 1e6)),
        "p50_ms": round(p50_us / 1000, 2),
        "p99_ms": round(p99_us / 1000, 2),
        "errors": errors,
    }


def measure(port: int, paths: list[str], clients: int, seconds: float, work: Path) -> dict:
    """One load run (after a short warm-up) with the best available generator."""
    if shutil.which("wrk"):
        run_wrk(port, paths, clients, 1, work)
        return run_wrk(port, paths, clients, seconds, work)
    from loadgen import run_load  # bench/loadgen.py: processes of asyncio raw HTTP/1.1 clients

    auth = {"Authorization": f"Bearer {TOKEN}"}
    return dict(run_load("127.0.0.1", port, paths, clients, seconds, auth))


def funnel_timings(port: int, runs: int = 11) -> dict[str, float]:
    """``GET /v1/funnel`` over every customer: the first call after start-up (it decodes
    every row) and the median of the next ``runs`` (each reads the whole hash again and
    decodes only rows that changed: none here)."""
    import httpx

    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        client.get(f"http://127.0.0.1:{port}/healthz")  # connect outside the timings
        for _ in range(runs + 1):
            started = time.perf_counter()
            response = client.get(f"http://127.0.0.1:{port}/v1/funnel", params={"since": "0"})
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return {
        "funnel_first_ms": round(timings[0], 1),
        "funnel_ms": round(statistics.median(timings[1:]), 1),
        "funnel_max_ms": round(max(timings[1:]), 1),
    }


def main() -> None:
    """Load, measure, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "api.json"))
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from infra.embedded import free_port, start_redis

    work = Path(tempfile.mkdtemp(prefix="touchpath-api-bench-"))
    redis_child = start_redis(free_port(), work / "redis", work, aof=False)
    redis_url = f"redis://127.0.0.1:{redis_child.port}/0"
    started = time.perf_counter()
    load_customers(redis_url, "bench", args.customers)
    load_s = time.perf_counter() - started
    rnd = random.Random(2)
    paths = [
        f"/v1/customers/u{n}/stage"
        if rnd.random() < 0.7
        else f"/v1/customers/a{n}/stage?type=anonymous_id"
        for n in (rnd.randrange(args.customers) for _ in range(20_000))
    ]
    api = start_api(redis_url, "bench", free_port(), work)
    bare = start_bare(free_port(), work)
    results: dict[str, Any] = {
        "customers": args.customers,
        "load_seconds": round(load_s, 1),
        "load_generator": "wrk" if shutil.which("wrk") else "asyncio",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        for clients in (64, 4):
            results[f"api_{clients}"] = measure(api.port, paths, clients, args.seconds, work)
            results[f"bare_{clients}"] = measure(bare.port, paths, clients, args.seconds, work)
        results.update(funnel_timings(api.port))
    finally:
        api.stop()
        bare.stop()
        redis_child.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = TARGETS
    results["met"] = {
        "rps_64": results["api_64"]["rps"] >= TARGETS["rps_64"],
        "p99_ms_64": results["api_64"]["p99_ms"] < TARGETS["p99_ms_64"],
        "p99_ms_4": results["api_4"]["p99_ms"] < TARGETS["p99_ms_4"],
        "funnel_ms": results["funnel_ms"] < TARGETS["funnel_ms"],
    }
    print_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def print_table(results: dict[str, Any]) -> None:
    """The figures as a small text table."""
    print(
        f"{results['customers']:,} customers, {results['cpus']} CPUs, "
        f"load generator: {results['load_generator']}"
    )
    print(f"{'run':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for key, label in (
        ("api_64", "API stage, 64 clients"),
        ("bare_64", "bare GET, 64 clients"),
        ("api_4", "API stage, 4 clients"),
        ("bare_4", "bare GET, 4 clients"),
    ):
        row = results[key]
        print(f"{label:<22}{row['rps']:>9,}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['errors']:>8}")
    print(
        f"funnel over all: {results['funnel_ms']} ms (median of 11; slowest "
        f"{results['funnel_max_ms']} ms; first call after start-up {results['funnel_first_ms']} ms)"
    )
    print("targets met:", results["met"])


if __name__ == "__main__":
    main()
