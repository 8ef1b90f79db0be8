"""The commit step alone: durable rounds' offsets to Redis first, then to Kafka."""

from __future__ import annotations

import pytest
import redis

from infra.streams import Partition, StreamError
from infra.streams.memory import MemoryBroker, MemoryConsumer
from processor.commit import Commits

TOPIC = "touchpoints"
P0, P1 = Partition(TOPIC, 0), Partition(TOPIC, 1)


def _commits(fail: list[BaseException]) -> tuple[MemoryConsumer, Commits, list]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, 2)
    consumer = MemoryConsumer(broker, "g")
    recorded: list[tuple[dict[int, int], int]] = []

    def record(offsets: dict[int, int], sequence: int) -> None:
        if fail:
            raise fail.pop(0)
        recorded.append((offsets, sequence))

    return consumer, Commits(consumer, record), recorded


def test_durable_rounds_are_recorded_then_committed_once() -> None:
    consumer, commits, recorded = _commits([])
    commits.commit()  # nothing durable: nothing to do
    commits.add({P0: 3}, 2)
    commits.add({P0: 5, P1: 1}, 1)
    commits.commit()
    assert recorded == [({0: 5, 1: 1}, 2)]  # the highest count of the rounds
    assert (consumer.committed(P0), consumer.committed(P1)) == (5, 1)
    commits.commit()
    assert len(recorded) == 1


def test_offsets_redis_did_not_take_wait_and_are_not_committed() -> None:
    consumer, commits, recorded = _commits([redis.ConnectionError("away")])
    commits.add({P0: 2}, 1)
    commits.commit()
    assert recorded == [] and consumer.committed(P0) is None
    commits.commit()
    assert recorded == [({0: 2}, 1)] and consumer.committed(P0) == 2


def test_a_kafka_error_surfaces_and_keeps_the_offsets() -> None:
    consumer, commits, _ = _commits([])
    commits.add({P0: 2}, 1)
    consumer.broker.failing = StreamError("broker away")
    with pytest.raises(StreamError):
        commits.commit()
    consumer.broker.failing = None
    commits.commit()
    assert consumer.committed(P0) == 2


def test_forgotten_offsets_are_never_committed() -> None:
    consumer, commits, recorded = _commits([])
    commits.add({P0: 2}, 1)
    commits.forget()
    commits.commit()
    assert recorded == [] and consumer.committed(P0) is None
