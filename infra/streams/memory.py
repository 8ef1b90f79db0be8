"""The stream interface in memory: one broker, consumer groups of one member.

For fast tests of the processor's steps (held to Kafka's behaviour by ``tests/contract/``).
A test can make the next calls fail with :attr:`MemoryBroker.failing` (a StreamError
raised by sends, polls and commits) or hold acknowledgements back with
:attr:`MemoryProducer.hold`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from infra.streams import Batch, OnAssign, Partition, Record, StreamError


class MemoryRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0  # ms since the epoch, when appended


class MemoryBroker:
    """Topics of partitions (lists of records) and each group's committed offsets."""

    def __init__(self) -> None:
        self.topics: dict[str, list[list[MemoryRecord]]] = {}
        self.committed: dict[tuple[str, Partition], int] = {}
        self.failing: StreamError | None = None  # raised by every call while set
        self.changed = threading.Condition()

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        with self.changed:
            self.topics.setdefault(topic, [[] for _ in range(partitions)])

    def check(self) -> None:
        if self.failing is not None:
            raise self.failing

    def append(self, topic: str, key: bytes | None, value: bytes) -> MemoryRecord:
        """Store a record on the partition its key hashes to (round robin without one)."""
        with self.changed:
            self.check()
            partitions = self.topics[topic]
            if key is None:
                index = sum(map(len, partitions)) % len(partitions)
            else:
                index = zlib.crc32(key) % len(partitions)
            log = partitions[index]
            record = MemoryRecord(topic, index, len(log), key, value, int(time.time() * 1000))
            log.append(record)
            self.changed.notify_all()
            return record

    def end(self, tp: Partition) -> int:
        return len(self.topics[tp.topic][tp.partition])


class MemoryDelivery:
    """Acknowledged at once, or failed with the error given."""

    __slots__ = ("error", "record")

    def __init__(self, record: MemoryRecord | None, error: StreamError | None = None) -> None:
        self.record, self.error = record, error

    @property
    def is_done(self) -> bool:
        return True

    def get(self, timeout_s: float) -> None:
        if self.error is not None:
            raise self.error


class MemoryProducer:
    """Appends to the broker at once; while ``hold`` is set, writes fail (and are not
    stored) with that error, like a broker that does not acknowledge."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.hold: StreamError | None = None
        self.sent: list[MemoryRecord] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> MemoryDelivery:
        self.broker.check()
        if self.hold is not None:
            return MemoryDelivery(None, self.hold)
        record = self.broker.append(topic, key, value)
        self.sent.append(record)
        return MemoryDelivery(record)

    def flush(self, timeout_s: float) -> None:
        self.broker.check()

    def close(self, timeout_s: float) -> None:
        return None


class MemoryConsumer:
    """The only member of its group: it is assigned every partition of its topics at its
    first poll; a partition without a committed offset is read from its beginning."""

    def __init__(self, broker: MemoryBroker, group: str) -> None:
        self.broker = broker
        self.group = group
        self._topics: list[str] = []
        self._on_assign: OnAssign | None = None
        self._positions: dict[Partition, int] = {}
        self._highwater: dict[Partition, int] = {}
        self._paused: set[Partition] = set()

    def subscribe(self, topics: Sequence[str], on_assign: OnAssign) -> None:
        self._topics, self._on_assign = list(topics), on_assign

    def _join(self) -> None:
        if self._positions or not self._topics:
            return
        assigned = sorted(
            Partition(topic, p)
            for topic in self._topics
            for p in range(len(self.broker.topics[topic]))
        )
        for tp in assigned:
            self._positions[tp] = self.broker.committed.get((self.group, tp), 0)
        if self._on_assign is not None:
            self._on_assign(assigned)

    def poll(self, timeout_ms: int, max_records: int) -> Batch:
        self.broker.check()
        self._join()
        deadline = time.monotonic() + timeout_ms / 1000
        with self.broker.changed:
            while True:
                batch = self._fetch(max_records)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    return batch
                self.broker.changed.wait(remaining)

    def _fetch(self, max_records: int) -> dict[Partition, Sequence[Record]]:
        batch: dict[Partition, Sequence[Record]] = {}
        for tp, position in self._positions.items():
            if tp in self._paused or max_records <= 0:
                continue
            log = self.broker.topics[tp.topic][tp.partition]
            self._highwater[tp] = len(log)
            records = log[position : position + max_records]
            if records:
                batch[tp] = records
                self._positions[tp] = position + len(records)
                max_records -= len(records)
        return batch

    def assignment(self) -> set[Partition]:
        return set(self._positions)

    def position(self, tp: Partition, timeout_ms: int) -> int | None:
        return self._positions[tp]

    def highwater(self, tp: Partition) -> int | None:
        return self._highwater.get(tp)

    def committed(self, tp: Partition) -> int | None:
        return self.broker.committed.get((self.group, tp))

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        self.broker.check()
        for tp, offset in offsets.items():
            self.broker.committed[(self.group, tp)] = offset

    def pause(self, *tps: Partition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: Partition) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[Partition]:
        return set(self._paused)

    def seek(self, tp: Partition, offset: int) -> None:
        self._positions[tp] = offset

    def seek_to_beginning(self, *tps: Partition) -> None:
        for tp in tps:
            self._positions[tp] = 0

    def close(self) -> None:
        self._positions.clear()


class MemoryReader(MemoryConsumer):
    """A consumer of no group: reads the partitions assigned to it, never commits."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker, group="")

    def partitions(self, topic: str) -> list[int]:
        self.broker.check()
        if topic not in self.broker.topics:
            raise StreamError(f"no partitions known for {topic}")
        return list(range(len(self.broker.topics[topic])))

    def assign(self, tps: Sequence[Partition]) -> None:
        self._positions = {tp: 0 for tp in tps}
        self._highwater.clear()
        self._paused.clear()
