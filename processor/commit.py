"""Step 4, commit: the offsets of durable rounds, recorded in Redis beside their effects
(:mod:`processor.offsets`), then committed to Kafka (the lower bound monitoring reads).

A round's offsets come here only once its resolution, dead letters included, is durable;
offsets of parts applied but not yet resolved never do, so after a crash or a rebalance they
are delivered again (and, every effect being idempotent, change nothing twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from infra.observability import DEPENDENCY_UP
from infra.streams import Consumer
from processor.decode import Offsets

log = logging.getLogger(__name__)
#: records partition → next offset in Redis, checked against the round's incarnation count
Record = Callable[[dict[int, int], int], None]


class Commits:
    """Durable rounds' offsets, waiting to be recorded and committed."""

    def __init__(self, consumer: Consumer, record: Record) -> None:
        self.consumer = consumer
        self._record = record
        self.durable: Offsets = {}
        self.sequence = 0  # the highest incarnation count of the durable rounds

    def add(self, offsets: Offsets, sequence: int) -> None:
        """A round is durable: its offsets may be committed."""
        self.durable.update(offsets)
        self.sequence = max(self.sequence, sequence)

    def commit(self) -> None:
        """Offsets go to Redis (beside their effects), then to Kafka; while Redis is away both
        wait for the next call (raises on Kafka errors, RedisRegressed if Redis lost writes)."""
        if not self.durable:
            return
        try:
            offsets = {tp.partition: offset for tp, offset in self.durable.items()}
            self._record(offsets, self.sequence)
        except redis.RedisError as exc:
            log.warning("offsets not recorded yet, retrying", extra={"error": repr(exc)})
            return
        self.consumer.commit(self.durable)
        self.durable = {}
        DEPENDENCY_UP.labels("kafka").set(1)

    def forget(self) -> None:
        """Forget what is not committed (it is delivered again)."""
        self.durable = {}
