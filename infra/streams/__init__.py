"""The small consumer/producer interface the processor uses, over Kafka or in memory.

:mod:`infra.streams.kafka` implements it with kafka-python (the one place outside
:mod:`infra.kafka` that imports it), :mod:`infra.streams.memory` in
memory (one broker, a group of one member) for fast tests of the processor's steps; the
contract tests in ``tests/contract/`` hold both to the same behaviour. Errors of the broker
or the client surface as :class:`StreamError` (transient: the caller retries or reads again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol


class Partition(NamedTuple):
    """One partition of a topic."""

    topic: str
    partition: int


class Record(Protocol):
    """One record as polled."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch: when the record was produced."""
        ...


Batch = Mapping[Partition, Sequence[Record]]
OnAssign = Callable[[list[Partition]], None]


class StreamError(Exception):
    """The broker or the client failed (unreachable, timed out, rebalanced): transient."""


class Consumer(Protocol):
    """A group consumer with manual commits."""

    def subscribe(self, topics: Sequence[str], on_assign: OnAssign) -> None:
        """Join the group for ``topics``; ``on_assign`` runs (inside ``poll``) with the newly
        assigned partitions, before any of them is read: it may position them."""

    def poll(self, timeout_ms: int, max_records: int) -> Batch:
        """Records after each unpaused assigned partition's position (waiting up to
        ``timeout_ms`` for some); positions move past them."""
        ...

    def assignment(self) -> set[Partition]: ...

    def position(self, tp: Partition, timeout_ms: int) -> int | None:
        """The offset of the next record to read."""
        ...

    def highwater(self, tp: Partition) -> int | None:
        """The partition's end as of its last fetch (None before the first)."""
        ...

    def committed(self, tp: Partition) -> int | None:
        """The group's committed offset (next to read), None if none."""
        ...

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit the next offset to read per partition."""

    def pause(self, *tps: Partition) -> None: ...
    def resume(self, *tps: Partition) -> None: ...
    def paused(self) -> set[Partition]: ...
    def seek(self, tp: Partition, offset: int) -> None: ...
    def seek_to_beginning(self, *tps: Partition) -> None: ...

    def close(self) -> None:
        """Leave the group without committing."""


class Reader(Protocol):
    """A consumer outside any group: partitions assigned by hand, nothing committed."""

    def partitions(self, topic: str) -> list[int]:
        """The topic's partition numbers (StreamError when none are known)."""
        ...

    def assign(self, tps: Sequence[Partition]) -> None:
        """Read exactly ``tps`` from now on, anew: positions, pauses and high-water marks of
        earlier assignments are forgotten."""

    def poll(self, timeout_ms: int, max_records: int) -> Batch: ...
    def position(self, tp: Partition, timeout_ms: int) -> int | None: ...
    def highwater(self, tp: Partition) -> int | None: ...
    def pause(self, *tps: Partition) -> None: ...
    def seek(self, tp: Partition, offset: int) -> None: ...
    def seek_to_beginning(self, *tps: Partition) -> None: ...
    def close(self) -> None: ...


class Delivery(Protocol):
    """A sent record's acknowledgement, pending or done."""

    @property
    def is_done(self) -> bool: ...

    def get(self, timeout_s: float) -> None:
        """Wait for the acknowledgement; StreamError if the write failed or timed out."""


class Producer(Protocol):
    """Writes records (acks=all), without waiting unless asked."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> Delivery: ...

    def flush(self, timeout_s: float) -> None:
        """Wait until everything sent is acknowledged or failed."""

    def close(self, timeout_s: float) -> None: ...


def wait_all(deliveries: Iterable[Delivery], timeout_s: float) -> None:
    """Wait for every acknowledgement (StreamError at the first failure)."""
    for delivery in deliveries:
        delivery.get(timeout_s)
