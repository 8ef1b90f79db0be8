"""Publish stage changes from the Redis outbox to Kafka, then acknowledge them.

The outbox entry is written in the same atomic script call as the profile it describes, so a
change is never lost; a Redis consumer group gives each entry to one processor instance, and entries
left pending by a crashed instance are claimed after ``CLAIM_IDLE_MS``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import orjson
import redis
from kafka import KafkaProducer

from processor import metrics

log = logging.getLogger(__name__)
GROUP = "publishers"
Entry = tuple[bytes, dict[bytes, bytes]]
CLAIM_IDLE_MS = 30_000


class OutboxPublisher:
    """Moves stage changes from the outbox stream to the stage-change topic."""

    def __init__(
        self,
        client: redis.Redis,
        outbox: str,
        producer: KafkaProducer,
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
        futures = []
        for _, fields in entries:
            change = fields[b"change"]
            key = orjson.loads(change)["customer_id"].encode()
            futures.append(self.producer.send(self.topic, key=key, value=change))
        self.producer.flush(self.timeout_s)
        for future in futures:
            future.get(self.timeout_s)
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
            metrics.STAGE_CHANGES.labels(orjson.loads(fields[b"change"])["to"]).inc()

    def _read_new(self, limit: int) -> list[Entry]:
        answer = cast(
            list[tuple[bytes, list[Entry]]],
            self.client.xreadgroup(GROUP, self.consumer, {self.outbox: ">"}, count=limit),
        )
        return [entry for _, stream_entries in answer for entry in stream_entries]

    def _claim_stale(self) -> list[Entry]:
        answer = cast(
            list[Any],
            self.client.xautoclaim(
                self.outbox, GROUP, self.consumer, CLAIM_IDLE_MS, start_id="0-0", count=1000
            ),
        )
        return [entry for entry in answer[1] if entry and entry[1]]


def exists_already(error: redis.ResponseError) -> bool:
    """Whether XGROUP CREATE failed only because the group exists (any other refusal, e.g.
    OOM while Redis is full, means it must be tried again)."""
    return "BUSYGROUP" in str(error)
