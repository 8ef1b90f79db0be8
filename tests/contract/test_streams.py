"""The stream interface's contract, held by the in-memory implementation and by tansu."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from infra.streams import Consumer, Partition, Reader, Record, StreamError, wait_all
from tests.contract.conftest import Streams
from tests.e2e.conftest import wait_for as eventually


def _fill(streams: Streams, topic: str, count: int, key: bytes = b"k") -> None:
    producer = streams.producer()
    wait_all([producer.send(topic, f"v{n}".encode(), key) for n in range(count)], 10)
    producer.flush(10)


def _read(consumer: Consumer, count: int) -> list[Record]:
    """Poll until ``count`` records came (in poll order)."""
    found: list[Record] = []

    def enough() -> bool:
        for records in consumer.poll(timeout_ms=200, max_records=100).values():
            found.extend(records)
        return len(found) >= count

    eventually(enough)
    return found


def _one_partition(streams: Streams, count: int) -> tuple[str, Partition]:
    topic = streams.topic(1)
    _fill(streams, topic, count)
    return topic, Partition(topic, 0)


def test_assignment_calls_back_with_every_partition_before_the_first_read(
    streams: Streams,
) -> None:
    topic = streams.topic(3)
    consumer = streams.consumer("g-assign")
    assigned: list[list[Partition]] = []
    consumer.subscribe([topic], assigned.append)
    eventually(lambda: consumer.poll(timeout_ms=100, max_records=10) is not None and assigned)
    assert assigned == [[Partition(topic, p) for p in range(3)]]
    assert consumer.assignment() == {Partition(topic, p) for p in range(3)}


def test_records_come_in_order_with_their_offsets(streams: Streams) -> None:
    topic, tp = _one_partition(streams, 5)
    consumer = streams.consumer("g-order")
    consumer.subscribe([topic], lambda _: None)
    records = _read(consumer, 5)
    assert [(r.topic, r.partition, r.offset, r.key, r.value) for r in records] == [
        (topic, 0, n, b"k", f"v{n}".encode()) for n in range(5)
    ]
    assert consumer.position(tp, timeout_ms=1000) == 5
    assert consumer.highwater(tp) == 5


def test_a_seek_on_assignment_positions_the_first_read(streams: Streams) -> None:
    topic, tp = _one_partition(streams, 5)
    consumer = streams.consumer("g-seek")

    def on_assign(partitions: Sequence[Partition]) -> None:
        for partition in partitions:
            consumer.seek(partition, 3)

    consumer.subscribe([topic], on_assign)
    assert [r.offset for r in _read(consumer, 2)] == [3, 4]
    consumer.seek_to_beginning(tp)
    assert [r.offset for r in _read(consumer, 5)] == [0, 1, 2, 3, 4]


def test_paused_partitions_yield_nothing_until_resumed(streams: Streams) -> None:
    topic = streams.topic(2)
    consumer = streams.consumer("g-pause")
    consumer.subscribe([topic], lambda _: None)
    eventually(
        lambda: (
            consumer.poll(timeout_ms=100, max_records=10) is not None
            and (len(consumer.assignment()) == 2)
        )
    )
    consumer.pause(*consumer.assignment())
    assert consumer.paused() == consumer.assignment()
    _fill(streams, topic, 4)
    assert consumer.poll(timeout_ms=500, max_records=10) == {}
    consumer.resume(*consumer.paused())
    assert consumer.paused() == set()
    assert len(_read(consumer, 4)) == 4


def test_a_commit_is_where_the_next_member_starts(streams: Streams) -> None:
    topic, tp = _one_partition(streams, 6)
    first = streams.consumer("g-commit")
    first.subscribe([topic], lambda _: None)
    _read(first, 6)
    assert first.committed(tp) is None
    first.commit({tp: 4})
    assert first.committed(tp) == 4
    first.close()
    second = streams.consumer("g-commit")
    second.subscribe([topic], lambda _: None)
    assert [r.offset for r in _read(second, 2)] == [4, 5]


def test_a_delivery_is_done_once_acknowledged(streams: Streams) -> None:
    topic = streams.topic(1)
    producer = streams.producer()
    delivery = producer.send(topic, b"x", None)
    producer.flush(10)
    assert delivery.is_done
    delivery.get(10)


def test_a_reader_reads_what_it_is_assigned_from_where_it_seeks(streams: Streams) -> None:
    topic = streams.topic(2)
    producer = streams.producer()
    before_ms = int(time.time() * 1000)
    wait_all([producer.send(topic, f"v{n}".encode(), b"k") for n in range(4)], 10)
    reader = streams.reader()
    assert reader.partitions(topic) == [0, 1]
    full = next(p for p in (0, 1) if _ends(streams, reader, topic, p) == 4)
    tp = Partition(topic, full)
    reader.assign([tp])
    reader.seek(tp, 2)
    assert reader.position(tp, timeout_ms=5000) == 2
    found: list[Record] = []

    def fetched() -> bool:
        for records in reader.poll(200, 10).values():
            found.extend(records)
        return len(found) >= 2

    eventually(fetched)
    assert [(r.offset, r.value) for r in found] == [(2, b"v2"), (3, b"v3")]
    assert before_ms - 5000 <= found[0].timestamp <= time.time() * 1000 + 5000
    assert reader.highwater(tp) == 4
    reader.assign([tp])  # anew: the high-water mark is forgotten until the next fetch
    assert reader.highwater(tp) is None


def _ends(streams: Streams, reader: Reader, topic: str, partition: int) -> int | None:
    """A partition's end, read by assigning it alone (None: never fetched)."""
    tp = Partition(topic, partition)
    reader.assign([tp])
    eventually(lambda: reader.poll(100, 10) is not None and reader.highwater(tp) is not None)
    return reader.highwater(tp)


def test_a_reader_knows_no_partitions_of_a_missing_topic(streams: Streams) -> None:
    with pytest.raises(StreamError):
        streams.reader().partitions(f"missing-{time.monotonic_ns()}")
