"""The backpressure policy alone: the dead-letter limit pauses every assigned partition."""

from __future__ import annotations

from infra.streams import Partition
from infra.streams.memory import MemoryBroker, MemoryConsumer, MemoryProducer
from processor.backpressure import hold_back
from processor.pauses import DEAD_LETTER_LIMIT, REDIS_FULL, Pauses

TOPIC = "touchpoints"


def _consumer() -> MemoryConsumer:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, 2)
    MemoryProducer(broker).send(TOPIC, b"x")
    consumer = MemoryConsumer(broker, "g")
    consumer.subscribe([TOPIC], lambda _: None)
    consumer.poll(timeout_ms=0, max_records=0)  # joins: every partition assigned
    return consumer


def test_the_dead_letter_limit_pauses_every_partition_until_it_ends() -> None:
    now = [0.0]
    consumer, pauses = _consumer(), Pauses(clock=lambda: now[0])
    assert not hold_back(consumer, pauses) and consumer.paused() == set()
    pauses.hold(DEAD_LETTER_LIMIT, 5, "flood")
    assert hold_back(consumer, pauses)
    assert consumer.paused() == {Partition(TOPIC, 0), Partition(TOPIC, 1)}
    assert consumer.poll(timeout_ms=0, max_records=10) == {}
    now[0] = 6.0  # the pause ran out
    assert not hold_back(consumer, pauses) and consumer.paused() == set()
    assert consumer.poll(timeout_ms=0, max_records=10) != {}


def test_redis_full_does_not_pause_fetching() -> None:
    consumer, pauses = _consumer(), Pauses()
    pauses.hold(REDIS_FULL, float("inf"), "maxmemory")
    assert not hold_back(consumer, pauses) and consumer.paused() == set()
