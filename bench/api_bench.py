"""API benchmark: 100,000 customers in Redis; stage look-ups under load; funnel latency.

In the same run: a bare FastAPI GET on uvicorn (uvloop + httptools, one worker) measured with
the same load generator, as the ceiling to compare with.

Run: ``python bench/api_bench.py [--customers 100000] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loadgen import run_load  # noqa: E402

from infra.embedded import Child, free_port, spawn, start_redis  # noqa: E402
from touchpath.journey import funnel_row  # noqa: E402

STAGES = ["awareness", "consideration", "decision", "purchase", "post-purchase"]
TOKEN = "bench-token"
START = 1_767_225_600_000


def load_customers(client: redis.Redis, prefix: str, count: int) -> None:
    rnd = random.Random(1)
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + 5000)):
            cid = f"cus_{i:08d}"
            reached = rnd.randrange(1, len(STAGES) + 1)
            at = START + rnd.randrange(0, 90 * 86_400_000)
            history = {}
            for stage in STAGES[:reached]:
                history[stage] = [at, f"m{i}-{stage}", rnd.choice(["web", "email", "chat"])]
                at += rnd.randrange(3_600_000, 5 * 86_400_000)
            profile = {
                "id": cid,
                "identities": [f"user_id:u{i}", f"anonymous_id:a{i}"],
                "stage": STAGES[reached - 1],
                "history": history,
                "first_touch": {
                    "at_ms": history["awareness"][0],
                    "channel": "web",
                    "campaign": rnd.choice(["spring", "summer", None]),
                },
                "traits": {"plan": rnd.choice(["free", "pro"])},
                "orders": 0,
                "revenue": 49.0 if reached >= 4 else 0.0,
                "refused_ties": [],
            }
            pipe.set(f"{prefix}:cust:{cid}", orjson.dumps(profile))
            for identity in profile["identities"]:
                pipe.set(f"{prefix}:idc:{identity}", cid)
            stage = profile["stage"]
            pipe.zadd(f"{prefix}:stage:{stage}", {cid: history[stage][0]})
            pipe.hset(f"{prefix}:funnel", cid, orjson.dumps(funnel_row(profile)))
        pipe.execute()


def start_api(redis_url: str, prefix: str, port: int, logs: Path) -> Child:
    env = {
        "TOUCHPATH_REDIS_URL": redis_url,
        "TOUCHPATH_REDIS_PREFIX": prefix,
        "TOUCHPATH_API_PORT": str(port),
        "TOUCHPATH_API_TOKENS": f"{TOKEN}=read",
        "TOUCHPATH_LOG_LEVEL": "WARNING",
    }
    return spawn("api", [sys.executable, "-m", "infra.cli", "api"], port, logs / "api.log", env)


def start_bare(port: int, logs: Path) -> Child:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
        "--app-dir",
        str(ROOT / "bench"),
    ]
    return spawn("bare", argv, port, logs / "bare.log")


def funnel_ms(port: int, runs: int = 5) -> float:
    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(
                f"http://127.0.0.1:{port}/v1/funnel", params={"since": "2026-01-01T00:00:00Z"}
            )
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return round(statistics.median(timings), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "api.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="touchpath-api-bench-"))
    redis_child = start_redis(free_port(), work / "redis", work, aof=False)
    redis_url = f"redis://127.0.0.1:{redis_child.port}/0"
    client = redis.Redis.from_url(redis_url)
    load_customers(client, "bench", args.customers)
    api, bare = start_api(redis_url, "bench", free_port(), work), start_bare(free_port(), work)
    paths = [f"/v1/customers/u{random.randrange(args.customers)}/stage" for _ in range(5000)]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    results: dict[str, object] = {"customers": args.customers}
    try:
        for clients in (64, 4):
            results[f"api_{clients}_clients"] = run_load(
                "127.0.0.1", api.port, paths, clients, args.seconds, auth
            )
            results[f"bare_{clients}_clients"] = run_load(
                "127.0.0.1", bare.port, paths, clients, args.seconds
            )
        results["funnel_ms"] = funnel_ms(api.port)
    finally:
        api.stop()
        bare.stop()
        redis_child.stop()
    ratio = results["api_64_clients"]["rps"] / max(1, results["bare_64_clients"]["rps"])  # type: ignore[index]
    results["api_vs_bare_rps_ratio_64"] = round(ratio, 2)
    for key, value in results.items():
        print(f"{key:24} {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
