"""Faults under load: nothing a client was told was accepted is lost or counted twice.

A steady load of identified and anonymous traffic goes through the collector while, one at
a time, the processor is SIGKILLed and restarted, the broker is stopped and restarted (the
collector answers 503 meanwhile; clients retry), Redis is SIGKILLed and restarted from its
AOF, and a second processor joins and leaves. Afterwards every accepted event must be in
exactly one journey, counted once, and every customer's stage must equal what the rules give
on the full accepted event set (computed by the reference model of the pure core).

Bounded in time, loopback only. Figures are printed and written to
``bench/results/chaos.json``.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from infra.embedded import Child, free_port, start_redis, start_seaweedfs, start_tansu
from infra.kafka import ensure_topics
from store.codecs import decode_journey_entry, decode_profile
from store.keys import Keys
from tests.e2e.conftest import WRITE_KEY, read_topic, start_service
from tests.reference import ReferenceStore
from touchpath.settings import load_settings
from touchpath.stages import load_stage_model

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Support Ticket Created",
]


@dataclass
class LoadReport:
    sent: int = 0
    accepted: list[str] = field(default_factory=list)
    retried: int = 0
    errors: list[str] = field(default_factory=list)


class Load(threading.Thread):
    """Posts small batches at a steady pace, retrying 503s and connection errors."""

    def __init__(self, url: str, people: int = 60) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.people = people
        self.report = LoadReport()
        self.stop = threading.Event()
        self.rnd = random.Random(3)

    def batch(self) -> list[dict[str, Any]]:
        events = []
        for _ in range(5):
            person = self.rnd.randrange(self.people)
            anon = f"anon-{person}-device-{person % 2}"
            event: dict[str, Any] = {"messageId": uuid.uuid4().hex, "anonymousId": anon}
            roll = self.rnd.random()
            if roll < 0.3:
                event |= {"type": "page", "properties": {"path": "/pricing"}}
            elif roll < 0.4:
                event |= {"type": "identify", "userId": f"user-{person}"}
            else:
                event |= {"type": "track", "event": self.rnd.choice(NAMES)}
                if roll > 0.7:
                    event["userId"] = f"user-{person}"
            events.append(event)
        return events

    def run(self) -> None:
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=5) as client:
            while not self.stop.is_set():
                events = self.batch()
                self.report.sent += len(events)
                self.post(client, events)
                self.stop.wait(0.02)

    def post(self, client: httpx.Client, events: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = client.post(f"{self.url}/v1/batch", json={"batch": events})
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                self.report.accepted.extend(e["messageId"] for e in events)
                return
            if response is not None and response.status_code != 503:
                self.report.errors.append(f"{response.status_code} {response.text[:200]}")
                return
            self.report.retried += 1
            time.sleep(0.2)
        self.report.errors.append("gave up after 60 s of retries")


@pytest.fixture
def durable_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    weed = start_seaweedfs(tmp_path / "s3", tmp_path)
    broker_port = free_port()
    broker = start_tansu(broker_port, tmp_path, weed)
    redis_port = free_port()
    redis_child = start_redis(redis_port, tmp_path / "redis", tmp_path, aof=True)
    run = uuid.uuid4().hex[:6]
    env = {
        "TOUCHPATH_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "TOUCHPATH_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TOUCHPATH_TOPIC_TOUCHPOINTS": f"chaos.{run}.touchpoints",
        "TOUCHPATH_TOPIC_DEAD_LETTER": f"chaos.{run}.dead-letter",
        "TOUCHPATH_TOPIC_STAGE_CHANGES": f"chaos.{run}.stage-changes",
        "TOUCHPATH_KAFKA_PARTITIONS": "3",
        "TOUCHPATH_CONSUMER_GROUP": f"chaos-{run}",
        "TOUCHPATH_CONSUMER_SESSION_TIMEOUT_MS": "3000",
        "TOUCHPATH_WRITE_KEYS": f"{WRITE_KEY}=website:web:server",  # replays its own times
        "TOUCHPATH_LOG_LEVEL": "WARNING",
    }
    ensure_topics(
        load_settings(**{k.removeprefix("TOUCHPATH_").lower(): v for k, v in env.items()})
    )
    stack = {
        "env": env,
        "dir": tmp_path,
        "weed": weed,
        "broker": broker,
        "redis": redis_child,
        "redis_port": redis_port,
        "broker_port": broker_port,
        "processors": [start_service("processor", env, tmp_path)],
        "collector": start_service("collector", env, tmp_path),
    }
    yield stack
    for child in [stack["collector"], *stack["processors"], stack["broker"], stack["redis"], weed]:
        child.stop()


def restart_processor(stack: dict[str, Any]) -> None:
    stack["processors"][0].kill()
    stack["processors"][0] = start_service("processor", stack["env"], stack["dir"])


def restart_broker(stack: dict[str, Any]) -> None:
    stack["broker"].stop()
    time.sleep(4)  # longer than the produce timeout: the collector must answer 503, not hang
    stack["broker"] = start_tansu(stack["broker_port"], stack["dir"], stack["weed"])


def restart_redis(stack: dict[str, Any]) -> None:
    stack["redis"].kill()
    time.sleep(1.0)
    stack["redis"] = start_redis(stack["redis_port"], stack["dir"] / "redis", stack["dir"])


def rebalance(stack: dict[str, Any]) -> None:
    extra: Child = start_service("processor", stack["env"], stack["dir"])
    time.sleep(4)
    extra.stop()


FAULTS = {
    "processor SIGKILL": restart_processor,
    "broker restart": restart_broker,
    "redis SIGKILL + AOF restart": restart_redis,
    "rebalance": rebalance,
}


def wait_drained(client: redis.Redis, prefix: str, accepted: set[str], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    total = 0
    while time.monotonic() < deadline:
        keys = client.keys(Keys(prefix).anchor("*", "data"))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "c:events")
        total = sum(int(v or 0) for v in pipe.execute())
        if total >= len(accepted):
            return total
        time.sleep(0.5)
    return total


def test_faults_under_load_lose_nothing(durable_stack: dict[str, Any]) -> None:
    stack = durable_stack
    collector = f"http://127.0.0.1:{stack['collector'].port}"
    load = Load(collector)
    load.start()
    outage_answers: list[float] = []
    for fault in FAULTS.values():
        time.sleep(3)
        started = time.monotonic()
        fault(stack)
        outage_answers.append(time.monotonic() - started)
    time.sleep(3)
    load.stop.set()
    load.join(90)
    report = load.report
    assert not report.errors, report.errors[:3]
    accepted = set(report.accepted)
    assert len(accepted) == len(report.accepted)

    assert all(p.alive() for p in stack["processors"]), "a processor died during the faults"
    client = redis.Redis.from_url(stack["env"]["TOUCHPATH_REDIS_URL"], decode_responses=True)
    counted = wait_drained(client, "tp", accepted, timeout_s=120)
    # every accepted event is in exactly one journey, counted once
    assert counted == len(accepted)
    journeys: dict[str, int] = {}
    for key in client.keys("tp:a:*:journey"):
        for member, at in client.zrange(key, 0, -1, withscores=True):
            message_id = decode_journey_entry(member, at)["id"]
            journeys[message_id] = journeys.get(message_id, 0) + 1
    lost = len(accepted - set(journeys))
    figures = {
        "events_sent": report.sent,
        "events_accepted": len(accepted),
        "requests_retried": report.retried,
        "events_lost": lost,
        "faults": list(FAULTS),
        "fault_seconds": [round(s, 2) for s in outage_answers],
    }
    print(json.dumps(figures))
    out = ROOT / "bench" / "results" / "chaos.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    assert lost == 0 and set(journeys) == accepted
    assert set(journeys.values()) == {1}
    assert report.retried > 0, "the broker outage must have been answered with 503"

    # stages equal what the rules give on the full accepted event set
    records = read_topic(
        stack["env"]["TOUCHPATH_KAFKA_BOOTSTRAP"],
        stack["env"]["TOUCHPATH_TOPIC_TOUCHPOINTS"],
        10**9,
        timeout_s=20,
    )
    events = {e["messageId"]: e for r in records for e in r["events"]}
    assert accepted <= set(events)
    reference = ReferenceStore(load_stage_model())
    reference.apply_batch([events[m] for m in sorted(accepted)])
    for profile in reference.profiles.values():
        cid = client.get(Keys("tp").customer_of(profile["identities"][0]))
        blob = client.get(Keys("tp").customer(cid))
        stored = decode_profile(blob) if blob else None
        assert stored is not None, profile["identities"]
        assert stored["stage"] == profile["stage"], (stored, profile)
        assert stored["history"] == profile["history"]
