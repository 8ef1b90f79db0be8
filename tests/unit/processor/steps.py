"""The apply and resolve steps wired on a real Redis (fresh prefix) and the in-memory broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from infra.streams.memory import MemoryBroker, MemoryProducer
from processor.apply import Applier
from processor.dead_letters import DeadLetters
from processor.offsets import Incarnation
from processor.pauses import DeadLetterBrake, Pauses
from processor.resolve import Resolve
from processor.resolver import Resolver
from processor.store import JourneyStore
from tests.unit.processor.records import MODEL, POLICY

DEAD = "dead-letter"


@dataclass
class Steps:
    client: redis.Redis
    store: JourneyStore
    broker: MemoryBroker
    producer: MemoryProducer
    incarnation: Incarnation
    apply: Applier
    resolve: Resolve


@contextmanager
def steps(redis_url: str) -> Iterator[Steps]:
    client = redis.Redis.from_url(redis_url)
    prefix = f"unit-{uuid.uuid4().hex[:8]}"
    store = JourneyStore(client, prefix)
    broker = MemoryBroker()
    broker.create_topic(DEAD, 1)
    producer = MemoryProducer(broker)
    dead_letters = DeadLetters(producer, DEAD, DeadLetterBrake(Pauses(), 0, 1, 2))
    incarnation = Incarnation(client, prefix, "unit")
    incarnation.start()
    applier = Applier(store, MODEL, POLICY, dead_letters, incarnation)
    resolve = Resolve(dead_letters, Resolver(store, MODEL, POLICY))
    try:
        yield Steps(client, store, broker, producer, incarnation, applier, resolve)
    finally:
        applier.close()
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
