"""Trigger timers: memory per pending timer, and firing lateness at a steady firing rate.

1. **Memory**: one million pending timers written by the resolver's own scheduling code
   (:func:`processor.triggers.schedule`, customer ids as the processor makes them) into a
   private redis-server; memory per timer = the growth of ``used_memory`` / timers.
2. **Lateness**: ``--firings`` customers whose cart-abandonment occurrences come due at
   ``--rate`` per second (profiles and timers in Redis as the processor writes them); one
   firing loop (:class:`processor.firing.FiringLoop`, allowed lateness 0) claims, evaluates and
   records them. Lateness of a firing = the Redis time its live-stream entry was added minus
   its due time (both this machine's clock). Kafka publication is not part of this figure
   (the outbox is drained asynchronously).

Run: ``python bench/triggers_bench.py [--timers 1000000] [--firings 20000] [--rate 1000]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import free_port, start_redis  # noqa: E402
from processor.firing import FiringLoop  # noqa: E402
from processor.triggers import TriggerStore, schedule  # noqa: E402
from store.codecs import encode_profile  # noqa: E402
from store.keys import Keys  # noqa: E402
from touchpath.triggers import load_triggers  # noqa: E402

PREFIX = "tp"


def cid(i: int) -> str:
    return "cus_" + hashlib.blake2b(f"user_id:u{i}".encode(), digest_size=10).hexdigest()


def profile(i: int, decision_ms: int) -> dict[str, Any]:
    return {
        "id": cid(i),
        "identities": [f"user_id:u{i}"],
        "stage": "decision",
        "history": {"decision": [decision_ms, f"m-{i}", "web"]},
        "surveys": [],
        "first_touch": {"at_ms": decision_ms, "channel": "web", "campaign": None},
    }


def memory_per_timer(client: redis.Redis, timers: int) -> dict[str, Any]:
    model = load_triggers()  # cart-abandonment and lapsing: a purchase arms one timer
    keys = Keys(PREFIX)
    before = int(client.info("memory")["used_memory"])
    start = time.perf_counter()
    chunk = 10_000
    for first in range(0, timers, chunk):
        new = {cid(i): profile(i, 1_767_225_600_000 + i) for i in range(first, first + chunk)}
        pipe = client.pipeline(transaction=False)
        schedule(pipe.execute_command, keys, model, {}, new)
        pipe.execute()
    seconds = time.perf_counter() - start
    count = client.zcard(keys.trigger("due"))
    grown = int(client.info("memory")["used_memory"]) - before
    client.delete(keys.trigger("due"))
    return {
        "pending_timers": count,
        "bytes_per_timer": round(grown / count, 1),
        "total_mib": round(grown / 2**20, 1),
        "write_s": round(seconds, 1),
    }


def lateness(client: redis.Redis, firings: int, rate: float) -> dict[str, Any]:
    model = load_triggers()
    trigger = model.get("cart-abandonment")
    assert trigger is not None
    keys = Keys(PREFIX)
    begin = int(time.time() * 1000) + 3000  # room to write everything first
    pipe = client.pipeline(transaction=False)
    for i in range(firings):
        due = begin + int(i * 1000 / rate)
        pipe.set(keys.customer(cid(i)), encode_profile(profile(i, due - trigger.after_ms)))
        pipe.zadd(keys.trigger("due"), {f"{cid(i)}\x1fcart-abandonment": due})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    store = TriggerStore(client, keys, 10 * firings, 10 * firings)
    loop = FiringLoop(store, model, lateness_ms=0, recheck_ms=3_600_000)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            if not loop.step():
                stop.wait(loop.wait_s())

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + firings / rate + 60
    while client.xlen(keys.live_changes) < firings and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join()
    late = []
    for entry_id, fields in client.xrange(keys.live_changes):
        added_ms = int(entry_id.split(b"-")[0])
        late.append(added_ms - orjson.loads(fields[b"change"])["at_ms"])
    late.sort()
    return {
        "firings": len(late),
        "rate_per_s": rate,
        "p50_ms": late[len(late) // 2],
        "p99_ms": late[int(len(late) * 0.99) - 1],
        "max_ms": late[-1],
        "mean_ms": round(statistics.fmean(late), 1),
        "lost": firings - len(late),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--firings", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        child = start_redis(free_port(), Path(tmp) / "redis", Path(tmp), aof=False)
        client = redis.Redis(port=child.port)
        try:
            result = {
                "memory": memory_per_timer(client, args.timers),
                "lateness": lateness(client, args.firings, args.rate),
            }
        finally:
            client.close()
            child.stop()
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "triggers.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
