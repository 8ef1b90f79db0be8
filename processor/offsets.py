"""Each partition's durable offset, kept in Redis beside the state it describes.

A round's offsets are written to Redis (``P:offsets:<topic>``, partition → next offset, only
ever raised) after its effects, and only then committed to Kafka. Redis persists its writes
in order (the AOF is a log; a snapshot is a point in time), so a Redis that comes back older —
``appendfsync everysec`` losing its last second, an AOF cut back, a snapshot restored — comes
back with older offsets too, and the processor, which reads from Redis's offsets on every
assignment, replays what Redis lost instead of trusting Kafka's commits (those stay as the
lower bound that monitoring reads).

A Redis that comes back older while the processor runs is noticed by its *incarnation*
counter (``P:incarnation:<instance>``): only this processor instance increments it, once per applied
part, after the part's effects, so a value lower than the one it last saw means Redis lost
writes. Offsets are recorded only if the counter is still at least the value the round's parts
saw (atomically, in the same script), and a regression makes the processor forget what it
holds and read again from Redis's offsets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import redis

from infra.retry import retry
from infra.streams import Consumer, Partition
from store import scripts
from store.keys import Keys

log = logging.getLogger(__name__)

INCARNATION_TTL_S = 7 * 24 * 3600  # an instance's counter outlives any pause of its own


class RedisRegressed(RuntimeError):
    """Redis came back older than this processor left it: it lost writes."""


class Incarnation:
    """This processor instance's counter in Redis, bumped after each applied part."""

    def __init__(self, client: redis.Redis, prefix: str, instance: str) -> None:
        self.client = client
        self.key = Keys(prefix).incarnation(instance)
        self.applied = 0  # the counter's value after the last applied part

    def start(self) -> None:
        """Start counting (again) from 0."""
        self.client.set(self.key, 0, ex=INCARNATION_TTL_S)
        self.applied = 0

    def bump(self, pipe: redis.client.Pipeline) -> None:
        """Queue the increment that follows a part's effects in its pipeline."""
        pipe.incr(self.key)
        pipe.expire(self.key, INCARNATION_TTL_S)

    def check(self, value: int) -> None:
        """The increment's answer must exceed the last one seen (an apply retried after a lost
        answer may have bumped it already); RedisRegressed otherwise."""
        if value <= self.applied:
            raise RedisRegressed(f"incarnation counter at {value}, last seen {self.applied}")
        self.applied = value

    def verify(self) -> None:
        """RedisRegressed if the counter went back (checked while no part is applied)."""
        value = int(self.client.get(self.key) or -1)
        if value < self.applied:
            raise RedisRegressed(f"incarnation counter at {value}, expected {self.applied}")


class OffsetStore:
    """Durable offsets of one topic's partitions in Redis, and Redis's identity."""

    def __init__(
        self, client: redis.Redis, prefix: str, topic: str, incarnation: Incarnation
    ) -> None:
        self.client = client
        self.key = Keys(prefix).offsets(topic)
        self.incarnation = incarnation
        self._raise = client.register_script(scripts.source("raise_offsets"))

    def record(self, offsets: Mapping[int, int], sequence: int) -> None:
        """Raise the stored offset of each partition to the given one (next to read), if the
        incarnation counter still is at least ``sequence`` (the value after the last part the
        offsets cover); RedisRegressed otherwise."""
        args = [sequence] + [value for item in sorted(offsets.items()) for value in item]
        if not self._raise(keys=[self.key, self.incarnation.key], args=args):
            raise RedisRegressed("Redis lost writes of the parts these offsets cover")

    def read(self) -> dict[int, int]:
        """The stored offset of every partition that has one."""
        return {int(p): int(o) for p, o in self.client.hgetall(self.key).items()}


def seek_to_stored(
    consumer: Consumer, partitions: list[Partition], stored: Mapping[int, int]
) -> None:
    """Position each partition at Redis's offset for it; a partition Redis has no offset for
    is read from its beginning (a new or emptied Redis replays what Kafka still holds)."""
    for tp in partitions:
        offset = stored.get(tp.partition)
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)
    log.info(
        "positions read from Redis",
        extra={"partitions": {tp.partition: stored.get(tp.partition) for tp in partitions}},
    )


class SeekOnAssignment:
    """Positions newly assigned partitions at Redis's offsets (retrying while Redis is away:
    a partition must never be read from Kafka's commit alone); the consumer's ``on_assign``."""

    def __init__(self, store: OffsetStore, consumer: Consumer, stop: threading.Event) -> None:
        self.store, self.consumer, self.stop = store, consumer, stop

    def __call__(self, assigned: list[Partition]) -> None:
        def seek() -> None:
            seek_to_stored(self.consumer, list(assigned), self.store.read())

        retry(seek, (redis.RedisError,), self.stop, _positions_wait)


def _positions_wait(exc: BaseException) -> None:
    log.warning("Redis unavailable: positions wait for it", extra={"error": repr(exc)})
