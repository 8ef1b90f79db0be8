"""The collector's asyncio producer against a real broker (tansu) and a closed port."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from infra.embedded import free_port
from infra.kafka import AsyncProducer, BrokerUnavailable, ensure_topics
from touchpath.settings import Settings, load_settings


def _settings(bootstrap: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return load_settings(
        kafka_bootstrap=bootstrap,
        kafka_partitions=1,
        topic_touchpoints=f"ap.{run}.touchpoints",
        topic_dead_letter=f"ap.{run}.dead-letter",
        topic_stage_changes=f"ap.{run}.stage-changes",
        produce_timeout_s=1.5,
    )


def _values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        found: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(found) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(r.value for r in records)
        return found
    finally:
        consumer.close()


def test_a_write_returns_once_acknowledged(bootstrap: str) -> None:
    settings = _settings(bootstrap)
    ensure_topics(settings)
    producer = AsyncProducer(settings)

    async def run() -> bool:
        await producer.send_many(
            [(settings.topic_touchpoints, b"k", b"one"), (settings.topic_touchpoints, None, b"two")]
        )
        await producer.send(settings.topic_touchpoints, b"three")
        return await producer.ready(settings.topic_touchpoints)

    try:
        assert asyncio.run(run())
    finally:
        producer.close()
    assert _values(bootstrap, settings.topic_touchpoints, 3) == [b"one", b"two", b"three"]


def test_an_unreachable_broker_fails_in_time_then_fast() -> None:
    settings = _settings(f"127.0.0.1:{free_port()}")  # nothing listens there
    producer = AsyncProducer(settings, api_version=(2, 5))  # no version probe to wait for

    async def run() -> float:
        assert not await producer.ready(settings.topic_touchpoints)
        with pytest.raises(BrokerUnavailable):
            await producer.send(settings.topic_touchpoints, b"x")
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="recent write failed"):
            await producer.send(settings.topic_touchpoints, b"x")
        return time.monotonic() - started

    try:
        assert asyncio.run(run()) < AsyncProducer.FAIL_FAST_S
    finally:
        producer.close(0)
