"""The processor's pipeline: the chain of steps and when each runs — poll, then decode and apply
part by part on the polling thread (:mod:`processor.decode`, :mod:`processor.apply`), resolve
on one resolver thread (:mod:`processor.resolve`), commit (:mod:`processor.commit`); dead
letters (:mod:`processor.dead_letters`), backpressure (:mod:`processor.backpressure`) and
retries (:mod:`processor.durable`) are policies of those steps.

The polling thread polls and stages batches part by part (decode, then apply on the applier
thread). When the resolver thread is free and the processor has caught up with the broker (or
too much is pending, or the oldest part waited too long) it takes *every* part applied so far
and resolves the union of their touched clusters: a backlog is applied before it is resolved,
so a customer with events all over it is derived once, and live traffic is resolved right
after each poll. Rounds run one at a time, in order, so a round always sees the previous
round's writes. A round's offsets are committed (``offset + 1``) only once its resolution is
durable in Redis; parts applied but not yet resolved are never committed, so after a crash or a
rebalance they are delivered again and (every effect being idempotent) change nothing twice.
A round is durable only once the dead letters of its parts are acknowledged too.

While :class:`processor.pauses.Pauses` holds ``dead_letter_limit``, the assigned partitions
are paused (no records are fetched; the group membership, rounds in flight and commits go on)
and what is applied is resolved at once. A step that fails on Redis (``redis_full`` when Redis
refuses writes) or Kafka is retried with the same input, backing off from 0.1 s to 5 s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from infra.streams import Batch, Consumer, Partition, StreamError
from processor import metrics
from processor.apply import Pending
from processor.backpressure import hold_back
from processor.commit import Commits, Record
from processor.decode import Offsets
from processor.durable import until_durable
from processor.offsets import seek_to_stored
from processor.pauses import Pauses

log = logging.getLogger(__name__)
MAX_ROUND_WAIT_S = 10.0  # a backlog delays visibility at most this long beyond applying


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


class Pipeline:
    """Polls, applies and resolves; ``step`` is one round of the processor loop."""

    def __init__(
        self,
        consumer: Consumer,
        apply: Callable[[Batch], Iterable[Pending]],
        resolve: Callable[[Pending], int],
        stop: threading.Event,
        pauses: Pauses,
        batch_records: int,
        max_pending_events: int,
        record: Record = lambda offsets, sequence: None,
    ) -> None:
        self.consumer = consumer
        self._commits = Commits(consumer, record)  # durable offsets: Redis, then Kafka
        self._apply, self._resolve, self._stop = apply, resolve, stop
        self._pauses = pauses
        self._batch_records = batch_records
        self._max_pending = max_pending_events
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="resolver")
        self._pending: Pending | None = None
        self._in_flight: tuple[Offsets, int, Future[int | None]] | None = None

    def step(self) -> None:
        """Poll → apply part by part, handing work to the resolver whenever it is free →
        commit the rounds that finished. While paused, nothing is fetched and what is
        applied is resolved without waiting for more."""
        paused = hold_back(self.consumer, self._pauses)
        batch = self.consumer.poll(timeout_ms=self._poll_timeout(), max_records=self._batch_records)
        metrics.PARTITIONS_ASSIGNED.set(len(self.consumer.assignment()))
        if batch and until_durable(self._apply_parts, batch, self._stop, self._pauses) is None:
            return
        # an empty poll may await a fetch
        self._advance(caught_up=paused or not behind(self.consumer))
        self._commits.commit()

    def _apply_parts(self, batch: Batch) -> bool:
        """Stage a batch part by part (a failed part restages the whole batch: idempotent)."""
        for part in self._apply(batch):
            if self._pending is None:
                self._pending = part
            else:
                self._pending.absorb(part)
            self._advance(caught_up=False)  # while applying, only when too much is pending
        return True

    def _advance(self, caught_up: bool) -> None:
        """Collect a finished round (waiting for it when too much is pending) and, if the
        resolver is free, start the next one: once caught up with the broker, when too much
        is pending, or when the oldest part waited too long. A backlog is applied before it is
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
        little while a round runs or applied work waits for more of a backlog (a finished round
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
            self._commits.add(offsets, sequence)

    def _hand_over(self, pending: Pending) -> None:
        log.debug(
            "round started",
            extra={"events": pending.events, "clusters": len(pending.clusters)},
        )
        done = self._executor.submit(
            until_durable, self._resolve, pending, self._stop, self._pauses
        )
        self._in_flight = (pending.offsets, pending.sequence, done)

    def drop(self) -> None:
        """Forget everything not committed (after a Kafka error: it is delivered again),
        letting a round in progress finish first so rounds never overlap."""
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                self._in_flight[2].result()
        self._in_flight = self._pending = None
        self._commits.forget()

    def reposition(self, stored: dict[int, int]) -> None:
        """Forget everything not committed and read every assigned partition again from
        Redis's offsets (after Redis restarted, maybe older than it was)."""
        self.drop()
        seek_to_stored(self.consumer, sorted(self.consumer.assignment()), stored)

    def close(self) -> None:
        """Commit the rounds that finished, then stop the resolver thread."""
        with contextlib.suppress(Exception):
            self._finish(wait=True)
            self._commits.commit()
        self.drop()
        self._executor.shutdown()
