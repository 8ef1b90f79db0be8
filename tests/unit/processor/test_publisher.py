"""The outbox publisher alone: a real Redis, the in-memory producer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis

from infra import redis_streams
from infra.streams import StreamError
from infra.streams.memory import MemoryBroker, MemoryProducer
from processor.publisher import GROUP, OutboxPublisher
from store.keys import Keys

TOPIC = "stage-changes"


@pytest.fixture
def outbox(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(redis_url)
    key = Keys(f"unit-{uuid.uuid4().hex[:8]}").outbox
    yield client, key
    client.delete(key)
    client.close()


def _broker() -> tuple[MemoryBroker, MemoryProducer]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, 3)
    return broker, MemoryProducer(broker)


def _add(client: redis.Redis, outbox: str, customer: str, to: str) -> None:
    change = orjson.dumps({"customer_id": customer, "to": to})
    client.xadd(outbox, {"change": change})


def _published(broker: MemoryBroker) -> list[tuple[bytes | None, dict]]:
    return [(r.key, orjson.loads(r.value or b"")) for log in broker.topics[TOPIC] for r in log]


def test_changes_are_published_keyed_by_customer_then_removed(
    outbox: tuple[redis.Redis, str],
) -> None:
    client, key = outbox
    broker, producer = _broker()
    publisher = OutboxPublisher(client, key, producer, TOPIC, "p1")
    _add(client, key, "c-1", "lead")
    _add(client, key, "c-2", "customer")
    assert publisher.drain() == 2
    assert sorted(_published(broker), key=lambda r: r[0] or b"") == [
        (b"c-1", {"customer_id": "c-1", "to": "lead"}),
        (b"c-2", {"customer_id": "c-2", "to": "customer"}),
    ]
    assert client.xlen(key) == 0
    assert publisher.drain() == 0


def test_changes_not_acknowledged_stay_until_claimed_again(
    outbox: tuple[redis.Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, key = outbox
    broker, producer = _broker()
    publisher = OutboxPublisher(client, key, producer, TOPIC, "p1")
    _add(client, key, "c-1", "lead")
    producer.hold = StreamError("no acknowledgement")
    with pytest.raises(StreamError):
        publisher.drain()
    assert client.xlen(key) == 1
    producer.hold = None
    assert publisher.drain() == 0  # pending, not idle long enough to be claimed
    monkeypatch.setattr(redis_streams, "CLAIM_IDLE_MS", 0)
    other = OutboxPublisher(client, key, producer, TOPIC, "p2")  # e.g. after a crash
    assert other.drain() == 1
    assert [change["customer_id"] for _, change in _published(broker)] == ["c-1"]
    assert client.xpending(key, GROUP)["pending"] == 0


def test_a_group_refused_is_created_on_the_next_drain(outbox: tuple[redis.Redis, str]) -> None:
    client, key = outbox
    _, producer = _broker()
    publisher = OutboxPublisher(client, key, producer, TOPIC, "p1")
    assert publisher.drain() == 0  # creates the stream and its group
    again = OutboxPublisher(client, key, producer, TOPIC, "p2")
    assert again.drain() == 0  # the group exists already: fine
