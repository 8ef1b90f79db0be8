"""The processor's flow: stage batches on the polling thread, resolve on one resolver thread.

The polling thread polls, decodes and applies batches (Redis works while Python decodes the
next one). Whenever the resolver thread is free it takes *every* batch staged so far and
resolves the union of their touched clusters, so a customer hit by several batches is derived
once, and resolution rounds grow with the load instead of falling behind it. Rounds run one at
a time, in order, so a round always sees the previous round's writes. A round's offsets are
committed (``offset + 1``) only once its resolution is durable in Redis; batches staged but not
yet resolved are never committed, so after a crash or a rebalance they are delivered again and
(every effect being idempotent) change nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from infra.observability import DEPENDENCY_UP
from processor import metrics

log = logging.getLogger(__name__)
Batch = Mapping[TopicPartition, Sequence[ConsumerRecord]]
Offsets = dict[TopicPartition, int]
T = TypeVar("T")
R = TypeVar("R")


class DeadLetterLimitExceeded(RuntimeError):
    """Too many dead letters in a minute: likely a bad deploy or a poisoned topic."""


@dataclass(slots=True)
class Staged:
    """Batches applied to Redis whose touched clusters are still to be resolved."""

    started: float
    offsets: Offsets  # next offset to consume per partition
    clusters: set[str]
    events: int = 0
    channels: Counter[str] = field(default_factory=Counter)  # new events by channel
    received_ms: list[int] = field(default_factory=list)  # collector receipt of new events
    duplicates: int = 0

    def absorb(self, later: Staged) -> None:
        """Fold a later staged batch into this one."""
        self.offsets.update(later.offsets)
        self.clusters |= later.clusters
        self.events += later.events
        self.channels.update(later.channels)
        self.received_ms += later.received_ms
        self.duplicates += later.duplicates


def next_offsets(batch: Batch) -> Offsets:
    """``last offset + 1`` for every partition in a batch."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


def commit(consumer: KafkaConsumer, offsets: Offsets) -> None:
    if offsets:
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})


class Flow:
    """Polls, stages and resolves; ``step`` is one round of the processor loop."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        stage: Callable[[Batch], Staged],
        resolve: Callable[[Staged], int],
        stop: threading.Event,
        batch_records: int,
        max_pending_events: int,
    ) -> None:
        self.consumer = consumer
        self._stage, self._resolve, self._stop = stage, resolve, stop
        self._batch_records = batch_records
        self._max_pending = max_pending_events
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="resolver")
        self._pending: Staged | None = None
        self._in_flight: tuple[Offsets, Future[int | None]] | None = None

    def step(self) -> None:
        """Poll → stage → commit a finished round → hand what is staged to the resolver."""
        batch = self.consumer.poll(timeout_ms=self._poll_timeout(), max_records=self._batch_records)
        metrics.PARTITIONS_ASSIGNED.set(len(self.consumer.assignment()))
        if batch:
            staged = until_durable(self._stage, batch, self._stop)
            if staged is None:
                return
            if self._pending is None:
                self._pending = staged
            else:
                self._pending.absorb(staged)
        too_much = self._pending is not None and self._pending.events > self._max_pending
        self._finish(wait=too_much)
        if self._in_flight is None and self._pending is not None:
            self._hand_over(self._pending)
            self._pending = None

    def _poll_timeout(self) -> int:
        """Milliseconds a poll may wait for records: none while work waits for the resolver;
        a little while a round runs (the poll waits on the network, the resolver works; a
        finished round is committed at most this late); else long."""
        if self._pending is not None and self._in_flight is None:
            return 0
        return 100 if self._in_flight is not None else 500

    def _finish(self, wait: bool) -> None:
        if self._in_flight is None:
            return
        offsets, done = self._in_flight
        if not (wait or done.done()):
            return
        self._in_flight = None
        if done.result() is not None:  # None: stopped before it was durable
            commit(self.consumer, offsets)
            DEPENDENCY_UP.labels("kafka").set(1)

    def _hand_over(self, staged: Staged) -> None:
        done = self._executor.submit(until_durable, self._resolve, staged, self._stop)
        self._in_flight = (staged.offsets, done)

    def drop(self) -> None:
        """Forget everything not committed (after a Kafka error: it is delivered again),
        letting a round in progress finish first so rounds never overlap."""
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                self._in_flight[1].result()
        self._in_flight = self._pending = None

    def close(self) -> None:
        """Commit a round that finished, then stop the resolver thread."""
        with contextlib.suppress(Exception):
            self._finish(wait=True)
        self.drop()
        self._executor.shutdown()


def until_durable(step: Callable[[T], R], work: T, stop: threading.Event) -> R | None:
    """Retry a step on Redis/Kafka errors (same input, nothing committed) until it lands;
    None when stopped first."""
    backoff = 0.1
    while not stop.is_set():
        try:
            result = step(work)
            DEPENDENCY_UP.labels("redis").set(1)
            return result
        except DeadLetterLimitExceeded:
            raise
        except (redis.RedisError, OSError) as exc:
            DEPENDENCY_UP.labels("redis").set(0)
            log.warning("batch not durable yet, retrying", extra={"error": repr(exc)})
        except Exception as exc:  # Kafka errors while dead-lettering
            log.warning("batch not finished, retrying", extra={"error": repr(exc)})
        stop.wait(backoff)
        backoff = min(backoff * 2, 5.0)
    return None
