"""One broker interface, two implementations: the same tests run in memory and on tansu."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from infra.streams import Consumer, Producer, Reader
from infra.streams.kafka import KafkaStreamConsumer, KafkaStreamProducer, KafkaStreamReader
from infra.streams.memory import MemoryBroker, MemoryConsumer, MemoryProducer, MemoryReader

T = TypeVar("T")


class Streams(Protocol):
    """What a contract test needs of an implementation."""

    def topic(self, partitions: int) -> str: ...
    def producer(self) -> Producer: ...
    def consumer(self, group: str) -> Consumer: ...
    def reader(self) -> Reader: ...


@dataclass
class MemoryStreams:
    broker: MemoryBroker = field(default_factory=MemoryBroker)

    def topic(self, partitions: int) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        self.broker.create_topic(name, partitions)
        return name

    def producer(self) -> Producer:
        return MemoryProducer(self.broker)

    def consumer(self, group: str) -> Consumer:
        return MemoryConsumer(self.broker, group)

    def reader(self) -> Reader:
        return MemoryReader(self.broker)


@dataclass
class KafkaStreams:
    bootstrap: str
    closing: list[Callable[[], None]] = field(default_factory=list)

    def topic(self, partitions: int) -> str:
        name = f"contract.{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()
        return name

    def producer(self) -> Producer:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        self.closing.append(lambda: producer.close(1))
        return KafkaStreamProducer(producer)

    def consumer(self, group: str) -> Consumer:
        client = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=400,
        )
        consumer = KafkaStreamConsumer(client)
        self.closing.append(consumer.close)
        return consumer

    def reader(self) -> Reader:
        client = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        reader = KafkaStreamReader(client)
        self.closing.append(reader.close)
        return reader


@pytest.fixture(params=["memory", "kafka"])
def streams(request: pytest.FixtureRequest) -> Iterator[Streams]:
    if request.param == "memory":
        yield MemoryStreams()
        return
    kafka = KafkaStreams(request.getfixturevalue("bootstrap"))
    yield kafka
    for close in reversed(kafka.closing):
        close()
