"""The processor's flow: stage batches on the polling thread, resolve on one resolver thread.

The polling thread polls and stages batches part by part (decode, then apply on the applier
thread). When the resolver thread is free and the processor has caught up with the broker (or
too much is pending, or the oldest part waited too long) it takes *every* part staged so far
and resolves the union of their touched clusters: a backlog is staged before it is resolved,
so a customer with events all over it is derived once, and live traffic is resolved right
after each poll. Rounds run one at a time, in order, so a round always sees the previous
round's writes. A round's offsets are committed (``offset + 1``) only once its resolution is
durable in Redis; parts staged but not yet resolved are never committed, so after a crash or a
rebalance they are delivered again and (every effect being idempotent) change nothing twice.
A round is durable only once the dead letters of its parts are acknowledged too.

While :class:`processor.pauses.Pauses` holds ``dead_letter_limit``, the assigned partitions
are paused (no records are fetched; the group membership, rounds in flight and commits go on)
and what is staged is resolved at once. A step that fails on Redis (``redis_full`` when Redis
refuses writes) or Kafka is retried with the same input, backing off from 0.1 s to 5 s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from infra.observability import DEPENDENCY_UP
from infra.retry import retry
from infra.streams import Batch, Consumer, Partition, StreamError
from processor import metrics
from processor.dead_letters import SentLetter
from processor.offsets import seek_to_stored
from processor.pauses import DEAD_LETTER_LIMIT, REDIS_FULL, Pauses

log = logging.getLogger(__name__)
MAX_ROUND_WAIT_S = 10.0  # a backlog delays visibility at most this long beyond staging
Offsets = dict[Partition, int]
T = TypeVar("T")
R = TypeVar("R")


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
    letters: list[SentLetter] = field(default_factory=list)  # to confirm before committing
    sequence: int = 0  # the incarnation counter after its last part (processor/offsets.py)

    def absorb(self, later: Staged) -> None:
        """Fold a later staged batch into this one."""
        self.offsets.update(later.offsets)
        self.clusters |= later.clusters
        self.events += later.events
        self.channels.update(later.channels)
        self.received_ms += later.received_ms
        self.duplicates += later.duplicates
        self.letters += later.letters
        self.sequence = max(self.sequence, later.sequence)


def partition_lags(consumer: Consumer, timeout_ms: int) -> dict[Partition, int]:
    """Records not polled yet per assigned partition, from the high-water mark of its last
    fetch (the broker's ListOffsets answer is not trusted); partitions never fetched are left
    out."""
    lags = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            position = consumer.position(tp, timeout_ms=timeout_ms) or 0
            lags[tp] = max(0, highwater - position)
    return lags


def behind(consumer: Consumer) -> bool:
    """True when an assigned partition has records not polled yet (no waiting)."""
    try:
        return any(partition_lags(consumer, timeout_ms=0).values())
    except StreamError:  # e.g. a partition revoked meanwhile: the next poll tells
        return False


class Flow:
    """Polls, stages and resolves; ``step`` is one round of the processor loop."""

    def __init__(
        self,
        consumer: Consumer,
        stage: Callable[[Batch], Iterable[Staged]],
        resolve: Callable[[Staged], int],
        stop: threading.Event,
        pauses: Pauses,
        batch_records: int,
        max_pending_events: int,
        record: Callable[[dict[int, int], int], None] = lambda offsets, sequence: None,
    ) -> None:
        self.consumer = consumer
        self._record = record  # durable offsets into Redis, before Kafka
        self._stage, self._resolve, self._stop = stage, resolve, stop
        self._pauses = pauses
        self._batch_records = batch_records
        self._max_pending = max_pending_events
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="resolver")
        self._pending: Staged | None = None
        self._in_flight: tuple[Offsets, int, Future[int | None]] | None = None
        self._durable: Offsets = {}  # resolved rounds' offsets, committed after staging
        self._durable_sequence = 0

    def step(self) -> None:
        """Poll → stage part by part, handing work to the resolver whenever it is free →
        commit the rounds that finished. While paused, nothing is fetched and what is staged
        is resolved without waiting for more."""
        paused = self._hold_back()
        batch = self.consumer.poll(timeout_ms=self._poll_timeout(), max_records=self._batch_records)
        metrics.PARTITIONS_ASSIGNED.set(len(self.consumer.assignment()))
        if batch and until_durable(self._stage_parts, batch, self._stop, self._pauses) is None:
            return
        # an empty poll may await a fetch
        self._advance(caught_up=paused or not behind(self.consumer))
        self._commit_durable()

    def _hold_back(self) -> bool:
        """Pause every assigned partition while the dead-letter limit holds, resume after;
        True while paused."""
        if self._pauses.holding(DEAD_LETTER_LIMIT):
            self.consumer.pause(*self.consumer.assignment())  # again: a rebalance adds some
            return True
        if self.consumer.paused():
            self.consumer.resume(*self.consumer.paused())
        return False

    def _stage_parts(self, batch: Batch) -> bool:
        """Stage a batch part by part (a failed part restages the whole batch: idempotent)."""
        for staged in self._stage(batch):
            if self._pending is None:
                self._pending = staged
            else:
                self._pending.absorb(staged)
            self._advance(caught_up=False)  # while staging, only when too much is pending
        return True

    def _advance(self, caught_up: bool) -> None:
        """Collect a finished round (waiting for it when too much is pending) and, if the
        resolver is free, start the next one: once caught up with the broker, when too much
        is pending, or when the oldest part waited too long. A backlog is staged before it is
        resolved, so a customer with events all over it is derived once, not once per poll."""
        pending = self._pending
        full = pending is not None and pending.events >= self._max_pending
        self._finish(wait=full)
        if pending is None or self._in_flight is not None:
            return
        overdue = time.perf_counter() - pending.started > MAX_ROUND_WAIT_S
        if full or overdue or caught_up:
            self._hand_over(pending)
            self._pending = None

    def _poll_timeout(self) -> int:
        """Milliseconds a poll may wait for records (it returns as soon as some arrive): a
        little while a round runs or staged work waits for more of a backlog (a finished round
        is committed at most this late), else long."""
        return 100 if self._in_flight is not None or self._pending is not None else 500

    def _finish(self, wait: bool) -> None:
        if self._in_flight is None:
            return
        offsets, sequence, done = self._in_flight
        if not (wait or done.done()):
            return
        self._in_flight = None
        if done.result() is not None:  # None: stopped before it was durable
            self._durable.update(offsets)
            self._durable_sequence = max(self._durable_sequence, sequence)

    def _commit_durable(self) -> None:
        """Durable rounds' offsets go to Redis (beside their effects), then to Kafka (the lower
        bound monitoring reads); while Redis is away both wait for the next step."""
        if not self._durable:
            return
        try:
            offsets = {tp.partition: offset for tp, offset in self._durable.items()}
            self._record(offsets, self._durable_sequence)
        except redis.RedisError as exc:
            log.warning("offsets not recorded yet, retrying", extra={"error": repr(exc)})
            return
        self.consumer.commit(self._durable)
        self._durable = {}
        DEPENDENCY_UP.labels("kafka").set(1)

    def _hand_over(self, staged: Staged) -> None:
        log.debug(
            "round started",
            extra={"events": staged.events, "clusters": len(staged.clusters)},
        )
        done = self._executor.submit(until_durable, self._resolve, staged, self._stop, self._pauses)
        self._in_flight = (staged.offsets, staged.sequence, done)

    def drop(self) -> None:
        """Forget everything not committed (after a Kafka error: it is delivered again),
        letting a round in progress finish first so rounds never overlap."""
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                self._in_flight[2].result()
        self._in_flight = self._pending = None
        self._durable = {}

    def reposition(self, stored: dict[int, int]) -> None:
        """Forget everything not committed and read every assigned partition again from
        Redis's offsets (after Redis restarted, maybe older than it was)."""
        self.drop()
        seek_to_stored(self.consumer, sorted(self.consumer.assignment()), stored)

    def close(self) -> None:
        """Commit the rounds that finished, then stop the resolver thread."""
        with contextlib.suppress(Exception):
            self._finish(wait=True)
            self._commit_durable()
        self.drop()
        self._executor.shutdown()


def until_durable(
    step: Callable[[T], R], work: T, stop: threading.Event, pauses: Pauses
) -> R | None:
    """Retry a step on Redis and Kafka errors (same input, nothing committed) until it lands;
    None when stopped first; any other error is a bug and surfaces. While Redis refuses
    writes (``maxmemory`` reached), ``redis_full`` holds: the processor is unready but Redis
    is reachable."""

    def failed(exc: BaseException) -> None:
        if isinstance(exc, redis.OutOfMemoryError):  # (its text quotes the arguments)
            DEPENDENCY_UP.labels("redis").set(1)
            pauses.hold(REDIS_FULL, float("inf"), "used memory > maxmemory")
            log.warning("Redis refuses writes (maxmemory reached), retrying")
        elif isinstance(exc, redis.RedisError | OSError):
            DEPENDENCY_UP.labels("redis").set(0)
            log.warning("batch not durable yet, retrying", extra={"error": repr(exc)})
        else:  # Kafka errors while dead-lettering
            log.warning("batch not finished, retrying", extra={"error": repr(exc)})

    def landed() -> R:
        result = step(work)
        DEPENDENCY_UP.labels("redis").set(1)
        pauses.release(REDIS_FULL)
        return result

    return retry(landed, (redis.RedisError, OSError, StreamError), stop, failed)
