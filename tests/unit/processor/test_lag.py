"""Lag from durable offsets, measured with the in-memory reader."""

from __future__ import annotations

import zlib

import pytest

from infra.streams import StreamError
from infra.streams.memory import MemoryBroker, MemoryProducer, MemoryReader, MemoryRecord
from processor import metrics
from processor.lag import LagProbe, PartitionLag, publish

TOPIC = "touchpoints"


def _broker(counts: list[int]) -> tuple[MemoryBroker, list[list[MemoryRecord]]]:
    """A topic of ``len(counts)`` partitions holding that many records each."""
    broker = MemoryBroker()
    broker.create_topic(TOPIC, len(counts))
    producer = MemoryProducer(broker)
    for partition, count in enumerate(counts):
        key = next(k for k in (b"k%d" % n for n in range(99)) if _lands(k, partition, counts))
        for n in range(count):
            producer.send(TOPIC, f"{partition}-{n}".encode(), key)
    return broker, broker.topics[TOPIC]


def _lands(key: bytes, partition: int, counts: list[int]) -> bool:
    return zlib.crc32(key) % len(counts) == partition


def test_lag_counts_from_the_durable_offset_and_ages_the_first_record_past_it() -> None:
    broker, logs = _broker([5, 0, 3])
    now_s = logs[0][2].timestamp / 1000 + 7.5
    probe = LagProbe(MemoryReader(broker), TOPIC, lambda: {0: 2, 1: 0}, clock=lambda: now_s)
    lags = probe.measure(timeout_s=2)
    assert lags[0] == PartitionLag(3, pytest.approx(7.5, abs=0.01))
    assert lags[1] == PartitionLag(0, 0.0)  # nothing there: caught up
    assert lags[2].records == 3  # nothing durable yet: from the beginning
    assert lags[2].seconds == pytest.approx(now_s - logs[2][0].timestamp / 1000, abs=0.01)


def test_caught_up_is_no_lag_and_measuring_again_sees_new_records() -> None:
    broker, _ = _broker([2])
    durable = {0: 2}
    probe = LagProbe(MemoryReader(broker), TOPIC, lambda: durable)
    assert probe.measure(timeout_s=2) == {0: PartitionLag(0, 0.0)}
    MemoryProducer(broker).send(TOPIC, b"late")
    assert probe.measure(timeout_s=2)[0].records == 1
    durable[0] = 3
    assert probe.measure(timeout_s=2) == {0: PartitionLag(0, 0.0)}


def test_an_unknown_topic_is_a_stream_error() -> None:
    probe = LagProbe(MemoryReader(MemoryBroker()), TOPIC, dict)
    with pytest.raises(StreamError):
        probe.measure(timeout_s=1)


def test_published_lag_sets_the_gauges_per_partition() -> None:
    publish({7: PartitionLag(12, 3.14159)})
    assert metrics.CONSUMER_LAG.labels("7")._value.get() == 12
    assert metrics.CONSUMER_LAG_SECONDS.labels("7")._value.get() == 3.142
