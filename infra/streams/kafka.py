"""The stream interface over kafka-python (the services reach Kafka through it or infra.kafka).

Every kafka-python error surfaces as :class:`infra.streams.StreamError`; records are
kafka-python's own (they have the fields of :class:`infra.streams.Record`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from infra.kafka import make_consumer, producer_config
from infra.streams import Batch, OnAssign, Partition, StreamError
from touchpath.settings import Settings

T = TypeVar("T")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise StreamError(repr(exc)) from exc


def _kafka(tp: Partition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _ours(tps: Any) -> set[Partition]:
    return {Partition(tp.topic, tp.partition) for tp in tps}


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign: OnAssign) -> None:
        self.on_assign = on_assign

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.on_assign(sorted(_ours(assigned)))


class KafkaStreamConsumer:
    """A :class:`infra.streams.Consumer` over a ``KafkaConsumer``."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.client = consumer

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with _translated():
            return method(*args, **kwargs)

    def subscribe(self, topics: Sequence[str], on_assign: OnAssign) -> None:
        self._call(self.client.subscribe, list(topics), listener=_Listener(on_assign))

    def poll(self, timeout_ms: int, max_records: int) -> Batch:
        batch = self._call(self.client.poll, timeout_ms=timeout_ms, max_records=max_records)
        return {Partition(tp.topic, tp.partition): records for tp, records in batch.items()}

    def assignment(self) -> set[Partition]:
        return _ours(self.client.assignment())

    def position(self, tp: Partition, timeout_ms: int) -> int | None:
        return cast(int | None, self._call(self.client.position, _kafka(tp), timeout_ms=timeout_ms))

    def highwater(self, tp: Partition) -> int | None:
        return cast(int | None, self.client.highwater(_kafka(tp)))

    def committed(self, tp: Partition) -> int | None:
        return cast(int | None, self._call(self.client.committed, _kafka(tp)))

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        if offsets:
            self._call(
                self.client.commit,
                {_kafka(tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
            )

    def pause(self, *tps: Partition) -> None:
        self._call(self.client.pause, *map(_kafka, tps))

    def resume(self, *tps: Partition) -> None:
        self._call(self.client.resume, *map(_kafka, tps))

    def paused(self) -> set[Partition]:
        return _ours(self.client.paused())

    def seek(self, tp: Partition, offset: int) -> None:
        self._call(self.client.seek, _kafka(tp), offset)

    def seek_to_beginning(self, *tps: Partition) -> None:
        self._call(self.client.seek_to_beginning, *map(_kafka, tps))

    def close(self) -> None:
        self._call(self.client.close, autocommit=False)


class KafkaStreamReader(KafkaStreamConsumer):
    """A :class:`infra.streams.Reader` over a ``KafkaConsumer`` without a group."""

    def partitions(self, topic: str) -> list[int]:
        ids = self._call(self.client.partitions_for_topic, topic)
        if not ids:
            raise StreamError(f"no partitions known for {topic}")
        return sorted(ids)

    def assign(self, tps: Sequence[Partition]) -> None:
        self._call(self.client.assign, [])  # forgets the high-water marks fetched so far
        self._call(self.client.assign, [_kafka(tp) for tp in tps])


class KafkaDelivery:
    """A :class:`infra.streams.Delivery` over kafka-python's record future."""

    __slots__ = ("future",)

    def __init__(self, future: FutureRecordMetadata) -> None:
        self.future = future

    @property
    def is_done(self) -> bool:
        return bool(self.future.is_done)

    def get(self, timeout_s: float) -> None:
        with _translated():
            self.future.get(timeout_s)


class KafkaStreamProducer:
    """A :class:`infra.streams.Producer` over a ``KafkaProducer``."""

    def __init__(self, producer: KafkaProducer) -> None:
        self.client = producer

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> KafkaDelivery:
        with _translated():
            return KafkaDelivery(self.client.send(topic, value=value, key=key))

    def flush(self, timeout_s: float) -> None:
        with _translated():
            self.client.flush(timeout_s)

    def close(self, timeout_s: float) -> None:
        with _translated():
            self.client.close(timeout_s)


def stream_consumer(settings: Settings, **overrides: Any) -> KafkaStreamConsumer:
    """The processor's group consumer (:func:`infra.kafka.make_consumer`)."""
    return KafkaStreamConsumer(make_consumer(settings, **overrides))


def stream_reader(settings: Settings, **overrides: Any) -> KafkaStreamReader:
    """A consumer of no group (:func:`infra.kafka.make_consumer` with ``group_id=None``)."""
    return KafkaStreamReader(make_consumer(settings, **{**overrides, "group_id": None}))


def stream_producer(settings: Settings, **overrides: Any) -> KafkaStreamProducer:
    """An acks=all producer (:func:`infra.kafka.producer_config`)."""
    return KafkaStreamProducer(KafkaProducer(**producer_config(settings, **overrides)))
