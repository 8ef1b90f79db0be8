"""Processor benchmark: a synthetic population through the real broker into Redis.

10,000 people and 100,000 events by default: a third browse anonymously on two devices
before identifying; email and chat touchpoints mixed in; events spread over 6 partitions in
records of up to 100 events (as the collector writes them), pre-loaded before the processors
start. Measures events/s with 1 and 2 processor instances (from the moment every partition is
assigned, and from process start), checks the stitching of every person against the
generator's ground truth, and in the same run measures a bare pipelined Redis write rate
(3 writes per event) as the baseline.

Run: ``python bench/processor_bench.py [--people 10000] [--events 100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaProducer

from store.keys import Keys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.embedded import (  # noqa: E402
    Child,
    free_port,
    spawn,
    start_redis,
    start_redis_cluster,
    start_tansu,
)
from infra.kafka import ensure_topics  # noqa: E402
from touchpath.events import format_time  # noqa: E402
from touchpath.records import encode_touchpoints  # noqa: E402
from touchpath.settings import load_settings  # noqa: E402

START_MS = 1_767_225_600_000  # 2026-01-01
WEB = [
    "Product List Viewed",
    "Product Viewed",
    "Products Searched",
    "Product Added",
    "Checkout Started",
]


def iso(at_ms: int) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(at_ms / 1000, UTC))


def event(kind: str, at_ms: int, channel: str, **fields: Any) -> dict[str, Any]:
    body = {
        "type": kind,
        "messageId": uuid.uuid4().hex,
        "timestamp": iso(at_ms),
        "receivedAt": iso(at_ms),
        "source": "bench",
        "context": {"channel": channel},
    }
    body.update(fields)
    return body


def person_events(index: int, budget: int, rnd: random.Random) -> tuple[list[dict], set[str]]:
    """One person's events and the identifiers that must end up as one customer."""
    user, email = f"user-{index}", f"person{index}@example.com"
    devices = [
        f"anon-{index}-{d}-{uuid.uuid4().hex[:8]}" for d in range(2 if index % 3 == 0 else 1)
    ]
    at = START_MS + rnd.randrange(0, 30 * 86_400_000)
    found: list[dict] = []
    for step in range(budget):
        at += rnd.randrange(60_000, 3_600_000)
        device = devices[step % len(devices)]
        identified = step >= budget // 3
        ids: dict[str, Any] = {"anonymousId": device}
        if identified:
            ids["userId"] = user
        roll = rnd.random()
        if step == budget // 3:
            found.append(
                event("identify", at, "web", traits={"email": email, "plan": "pro"}, **ids)
            )
            for other in devices:
                found.append(event("identify", at + 1, "web", anonymousId=other, userId=user))
        elif roll < 0.15 and identified:
            found.append(
                event(
                    "track",
                    at,
                    "email",
                    event="Email Link Clicked",
                    userId=user,
                    properties={"email": email},
                )
            )
        elif roll < 0.22:
            found.append(event("track", at, "chat", event="Live Chat Message Sent", **ids))
        elif roll < 0.5:
            found.append(
                event(
                    "page",
                    at,
                    "web",
                    properties={"path": rnd.choice(["/", "/pricing", "/products/1", "/blog"])},
                    **ids,
                )
            )
        elif step == budget - 1 and identified and rnd.random() < 0.4:
            found.append(
                event(
                    "track",
                    at,
                    "web",
                    event="Order Completed",
                    userId=user,
                    properties={"revenue": 25.0},
                )
            )
        else:
            found.append(event("track", at, "web", event=rnd.choice(WEB), **ids))
    return found, {f"user_id:{user}", f"email:{email}"} | {f"anonymous_id:{d}" for d in devices}


def population(people: int, total: int, seed: int = 7) -> tuple[list[dict], list[set[str]]]:
    rnd = random.Random(seed)
    per_person = max(3, total // people)
    events_all: list[dict] = []
    truth: list[set[str]] = []
    for index in range(people):
        found, ids = person_events(index, per_person, rnd)
        events_all.extend(found)
        truth.append(ids)
    rnd.shuffle(events_all)
    return events_all, truth


def preload(bootstrap: str, topic: str, events_all: list[dict], partitions: int) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type="lz4",
        linger_ms=20,
        batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    for start in range(0, len(events_all), 100):
        chunk = events_all[start : start + 100]
        producer.send(
            topic, value=encode_touchpoints(chunk, "bench"), partition=(start // 100) % partitions
        )
    producer.flush(120)
    producer.close()


def scrape(ports: list[int]) -> tuple[int, int]:
    """(events processed incl. duplicates, partitions assigned) summed over the instances."""
    events, partitions = 0.0, 0.0
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(
                (
                    "touchpath_processor_events_processed_total",
                    "touchpath_processor_events_duplicate_total",
                )
            ):
                events += float(line.rsplit(" ", 1)[1])
            elif line.startswith("touchpath_processor_partitions_assigned"):
                partitions += float(line.rsplit(" ", 1)[1])
    return int(events), int(partitions)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_processors(
    instances: int,
    env: dict[str, str],
    expected: int,
    logs: Path,
    client: redis.Redis,
    broker_pid: int,
) -> dict[str, float]:
    """Rates from process start (start-up and consumer-group join included) and from the join
    (every partition assigned) on; CPU per event of the processors, Redis and the broker from
    the join on (CPU figures are steadier than rates on a shared machine)."""
    ports = [free_port() for _ in range(instances)]
    children: list[Child] = []
    for port in ports:
        children.append(
            spawn(
                "processor",
                [sys.executable, "-m", "launcher.cli", "processor"],
                port,
                logs / f"processor-{port}.log",
                {**env, "TOUCHPATH_PROCESSOR_METRICS_PORT": str(port)},
            )
        )
    started = time.monotonic()  # processes are up
    partitions = int(env["TOUCHPATH_KAFKA_PARTITIONS"])
    joined: tuple[float, float, float, float] | None = None
    try:
        deadline = started + 600
        while time.monotonic() < deadline:
            events, assigned = scrape(ports)
            now = time.monotonic()
            if joined is None and assigned >= partitions:
                cpu = sum(cpu_seconds(c.process.pid) for c in children)
                joined = (now, cpu, redis_cpu(client), cpu_seconds(broker_pid))
            if events >= expected and joined is not None:
                used = sum(cpu_seconds(c.process.pid) for c in children) - joined[1]
                return {
                    "events_per_s_from_start": expected / (now - started),
                    "events_per_s_after_join": expected / (now - joined[0]),
                    "startup_s": joined[0] - started,
                    "processor_cpu_us": 1e6 * used / expected,
                    "redis_cpu_us": 1e6 * (redis_cpu(client) - joined[2]) / expected,
                    "broker_cpu_us": 1e6 * (cpu_seconds(broker_pid) - joined[3]) / expected,
                }
            time.sleep(0.1)  # the bench samples metrics; the processors never sleep
        raise RuntimeError("processors did not finish in 10 minutes")
    finally:
        for child in children:
            child.stop()


def check_stitching(client: redis.Redis, prefix: str, truth: list[set[str]]) -> dict[str, int]:
    wrong = 0
    seen_customers: dict[str, int] = {}
    for index, ids in enumerate(truth):
        pipe = client.pipeline(transaction=False)
        for identifier in sorted(ids):
            pipe.get(Keys(prefix).customer_of(identifier))
        customers = set(pipe.execute())
        if len(customers) != 1 or None in customers:
            wrong += 1
            continue
        cid = customers.pop()
        if seen_customers.setdefault(cid, index) != index:
            wrong += 1
    return {"people": len(truth), "stitched_wrong": wrong}


def redis_time_by_command(client: redis.Redis, events: int) -> dict[str, float]:
    """Redis's own time per event (µs) by command since the last ``CONFIG RESETSTAT``
    (scripts count as ``evalsha``/``fcall``, their inner commands as themselves)."""
    stats = client.info("commandstats")
    spent = {
        name.removeprefix("cmdstat_"): round(float(entry["usec"]) / events, 2)
        for name, entry in stats.items()
    }
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def memory_by_family(client: redis.Redis, prefix: str) -> dict[str, dict[str, int]]:
    """Redis memory (``MEMORY USAGE``) and key count per key family under ``prefix``: a key's
    family is its name with the identifier (or customer/cluster id) replaced by ``*``."""
    families: dict[str, dict[str, int]] = {}
    keys = list(client.scan_iter(match=f"{prefix}:*", count=2000))
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(chunk, pipe.execute(), strict=True):
            parts = key.split(":")
            if parts[1] in ("a", "cl") and len(parts) >= 4:
                family = f"{parts[1]}:*:{parts[-1]}"
            elif len(parts) >= 3 and parts[1] in ("id", "idc", "cust", "former", "trg", "cl"):
                family = f"{parts[1]}:*"
            else:
                family = ":".join(parts[1:])
            entry = families.setdefault(family, {"keys": 0, "bytes": 0})
            entry["keys"] += 1
            entry["bytes"] += int(used or 0)
    return dict(sorted(families.items(), key=lambda item: -item[1]["bytes"]))


def slot_master(nodes: list[Child], prefix: str) -> redis.Redis:
    """A client of the cluster master holding ``prefix``'s slot."""
    for node in nodes:
        candidate = redis.Redis(port=node.port, decode_responses=True)
        slot = int(candidate.execute_command("CLUSTER", "KEYSLOT", prefix))
        mine = any(
            int(first) <= slot <= int(last)
            for first, last in (r.split("-") for r in _own_ranges(candidate))
        )
        if mine:
            return candidate
        candidate.close()
    raise RuntimeError(f"no master holds the slot of {prefix}")


def _own_ranges(client: redis.Redis) -> list[str]:
    """The slot ranges (``first-last``) the node ``client`` talks to serves."""
    for line in client.execute_command("CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            return [f if "-" in f else f"{f}-{f}" for f in fields[8:] if not f.startswith("[")]
    return []


def redis_baseline(client: redis.Redis, events_all: list[dict], tag: str = "") -> float:
    """Bare pipelined Redis writes: SADD + ZADD + HINCRBY per event, batches of 2000 (keys
    under ``tag``: a cluster's hash tag puts them in the installation's slot)."""
    started = time.perf_counter()
    for start in range(0, len(events_all), 2000):
        pipe = client.pipeline(transaction=False)
        for item in events_all[start : start + 2000]:
            key = item.get("userId") or item.get("anonymousId")
            pipe.sadd(f"{tag}base:{key}:seen", item["messageId"])
            pipe.zadd(f"{tag}base:{key}:journey", {item["messageId"]: 1})
            pipe.hincrby(f"{tag}base:{key}:data", "events", 1)
        pipe.execute()
    return len(events_all) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--instances", default="1,2", help="processor counts to run, comma-separated"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on a local three-master Redis Cluster (TOUCHPATH_REDIS_CLUSTER=true): Redis "
        "figures are the master holding the installation's slot",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "processor.json"))
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    work = Path(tempfile.mkdtemp(prefix="touchpath-bench-"))
    broker = start_tansu(free_port(), work)
    if args.cluster:
        redis_children = start_redis_cluster(work, 3)
    else:
        redis_children = [start_redis(free_port(), work / "redis", work, aof=True)]
    bootstrap = f"127.0.0.1:{broker.port}"
    redis_url = f"redis://127.0.0.1:{redis_children[0].port}/0"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        events_all, truth = population(args.people, args.events)
        results: dict[str, Any] = {"events": len(events_all), "people": args.people}
        results["redis"] = "cluster of 3 masters" if args.cluster else "one redis-server"
        for instances in counts:
            run = uuid.uuid4().hex[:6]
            prefix = f"{{b{run}}}" if args.cluster else f"b{run}"
            if args.cluster:  # the master holding the installation's slot
                client.close()
                client = slot_master(redis_children, prefix)
            if "redis_baseline_events_per_s" not in results:
                results["redis_baseline_events_per_s"] = round(
                    redis_baseline(client, events_all, prefix if args.cluster else "")
                )
            env = {
                "TOUCHPATH_KAFKA_BOOTSTRAP": bootstrap,
                "TOUCHPATH_REDIS_URL": redis_url,
                "TOUCHPATH_REDIS_CLUSTER": "true" if args.cluster else "false",
                "TOUCHPATH_REDIS_PREFIX": prefix,
                "TOUCHPATH_CONSUMER_GROUP": f"b{run}",
                "TOUCHPATH_TOPIC_TOUCHPOINTS": f"bench.{run}.touchpoints",
                "TOUCHPATH_TOPIC_DEAD_LETTER": f"bench.{run}.dlq",
                "TOUCHPATH_TOPIC_STAGE_CHANGES": f"bench.{run}.changes",
                "TOUCHPATH_KAFKA_PARTITIONS": str(args.partitions),
                "TOUCHPATH_CONSUMER_SESSION_TIMEOUT_MS": "3000",
                "TOUCHPATH_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            }
            ensure_topics(
                load_settings(**{k.removeprefix("TOUCHPATH_").lower(): v for k, v in env.items()})
            )
            preload(bootstrap, env["TOUCHPATH_TOPIC_TOUCHPOINTS"], events_all, args.partitions)
            memory_before = int(client.info("memory")["used_memory"])
            client.config_resetstat()
            run_result = run_processors(
                instances, env, len(events_all), work, client, broker.process.pid
            )
            memory = int(client.info("memory")["used_memory"]) - memory_before
            check = check_stitching(client, env["TOUCHPATH_REDIS_PREFIX"], truth)
            commands = redis_time_by_command(client, len(events_all))
            families = memory_by_family(client, env["TOUCHPATH_REDIS_PREFIX"])
            results[f"processors_{instances}"] = {
                "events_per_s": round(run_result["events_per_s_after_join"]),
                "events_per_s_from_start": round(run_result["events_per_s_from_start"]),
                "startup_and_join_s": round(run_result["startup_s"], 2),
                "processor_cpu_us_per_event": round(run_result["processor_cpu_us"], 1),
                "redis_cpu_us_per_event": round(run_result["redis_cpu_us"], 1),
                "broker_cpu_us_per_event": round(run_result["broker_cpu_us"], 1),
                "redis_bytes_per_customer": round(memory / args.people),
                **check,
                "redis_us_per_event_by_command": commands,
                "memory_by_family": {
                    name: {**entry, "bytes_per_customer": round(entry["bytes"] / args.people)}
                    for name, entry in families.items()
                },
            }
            print(
                f"{instances} processor(s): {run_result['events_per_s_after_join']:,.0f} events/s "
                f"after joining the group ({run_result['events_per_s_from_start']:,.0f} from "
                f"process start; start-up and join {run_result['startup_s']:.1f} s); CPU per "
                f"event: processor {run_result['processor_cpu_us']:.0f} µs, Redis "
                f"{run_result['redis_cpu_us']:.0f} µs, broker "
                f"{run_result['broker_cpu_us']:.0f} µs; {memory / args.people:,.0f} Redis "
                f"bytes/customer; stitching: {check}",
                flush=True,
            )
            print(
                "    Redis time per event by command: "
                + ", ".join(f"{name} {us:.1f} µs" for name, us in list(commands.items())[:8])
            )
            for name, entry in families.items():
                print(
                    f"    {name:24} {entry['keys']:>8,} keys "
                    f"{entry['bytes'] / args.people:>8,.0f} B/customer"
                )
        base = results["redis_baseline_events_per_s"]
        print(f"bare pipelined Redis writes: {base:,} events/s (3 writes per event)")
        for instances in counts:
            rate = results[f"processors_{instances}"]["events_per_s"]
            print(f"  ratio {instances} processor(s) / Redis baseline: {rate / base:.2f}")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        client.close()
        for child in redis_children:
            child.stop()
        broker.stop()


if __name__ == "__main__":
    main()
