"""The stream interface's contract, held by the in-memory implementation and by tansu."""

from __future__ import annotations

from collections.abc import Sequence

from infra.streams import Consumer, Partition, Record, wait_all
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
