"""Publish stage changes from the Redis outbox to Kafka, then acknowledge them.

The outbox entry is written in the same atomic script call as the profile it describes, so a
change is never lost; a Redis consumer group gives each entry to one processor instance, and entries
left pending by a crashed instance are claimed after
:data:`infra.redis_streams.CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import logging

import orjson
import redis

from infra import redis_streams
from infra.redis_streams import Entry, claimed_entries, exists_already, read_entries
from infra.streams import Producer, wait_all
from processor import metrics

log = logging.getLogger(__name__)
GROUP = "publishers"


class OutboxPublisher:
    """Moves stage changes from the outbox stream to the stage-change topic."""

    def __init__(
        self,
        client: redis.Redis,
        outbox: str,
        producer: Producer,
        topic: str,
        consumer: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.producer = producer
        self.topic = topic
        self.consumer = consumer
        self.timeout_s = timeout_s
        self._group_ready = False  # created on first use: Redis may be full or down at start

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.outbox, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not exists_already(exc):
                raise
        self._group_ready = True

    def drain(self, limit: int = 5000) -> int:
        """Publish up to ``limit`` waiting changes (with acks=all); returns how many."""
        self._ensure_group()
        entries = self._claim_stale() + self._read_new(limit)
        if not entries:
            return 0
        deliveries = []
        for _, fields in entries:
            change = fields[b"change"]
            key = orjson.loads(change)["customer_id"].encode()
            deliveries.append(self.producer.send(self.topic, change, key))
        self.producer.flush(self.timeout_s)
        wait_all(deliveries, self.timeout_s)
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.outbox, GROUP, *ids)
        pipe.xdel(self.outbox, *ids)
        pipe.execute()
        self.counted(entries)
        return len(entries)

    def counted(self, entries: list[Entry]) -> None:
        """Count what was published (the trigger publisher counts firings instead)."""
        for _, fields in entries:
            change = orjson.loads(fields[b"change"])
            metrics.STAGE_CHANGES.labels(change.get("stage", change["to"])).inc()

    def _read_new(self, limit: int) -> list[Entry]:
        answer = self.client.xreadgroup(GROUP, self.consumer, {self.outbox: ">"}, count=limit)
        return read_entries(answer)

    def _claim_stale(self) -> list[Entry]:
        claim_idle_ms = redis_streams.CLAIM_IDLE_MS
        answer = self.client.xautoclaim(
            self.outbox, GROUP, self.consumer, claim_idle_ms, start_id="0-0", count=1000
        )
        return claimed_entries(answer)
