"""The write path: normalise a request's events, write accepted and rejected ones to Kafka.

Accepted events go into one touchpoint record shared by the requests of one event-loop turn
(:mod:`collector.group_commit`), and each rejected event into a dead-letter record; the
client's answer waits for both to be acknowledged with acks=all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector import metrics
from collector.group_commit import GroupCommit
from infra.kafka import AsyncProducer, BrokerUnavailable, Record
from infra.problems import Problem
from touchpath.events import IngestContext, InvalidEvent, metric_channel, normalize_event
from touchpath.identifiers import normalizers
from touchpath.pseudonyms import pseudonymize_event
from touchpath.records import encode_dead_letter
from touchpath.settings_views import CollectorSettings


@dataclass(slots=True)
class IngestResult:
    """What happened to a request's events: how many were accepted, which were rejected."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


class Ingestor:
    """Validates events and writes them durably; shared by every ingest endpoint."""

    def __init__(self, settings: CollectorSettings, producer: AsyncProducer) -> None:
        self.settings = settings
        self.producer = producer
        self._hash_key = settings.identifier_hash_key.encode() or None
        self._normalizers = normalizers(settings.phone_region)
        self.group_commit = GroupCommit(producer, settings.topic_touchpoints)

    async def ingest(
        self, raw_events: Sequence[object], ctx: IngestContext, forced_type: str | None = None
    ) -> IngestResult:
        """Normalise, then write; raises BrokerUnavailable if Kafka does not acknowledge."""
        accepted: list[dict[str, Any]] = []
        result = IngestResult()
        dead: list[Record] = []
        reasons: Counter[str] = Counter()
        for index, raw in enumerate(raw_events):
            try:
                event = normalize_event(
                    raw, ctx, forced_type=forced_type, max_bytes=self.settings.max_event_bytes
                )
                if self._hash_key:
                    pseudonymize_event(event, self._hash_key, self._normalizers)
                accepted.append(event)
            except InvalidEvent as exc:
                result.rejected.append({"index": index, "reason": str(exc), "code": exc.code})
                reasons[exc.code] += 1
                dead.append(
                    (
                        self.settings.topic_dead_letter,
                        None,
                        encode_dead_letter(
                            str(exc), raw, stage="collector", source=ctx.source, index=index
                        ),
                    )
                )
        await self._write(accepted, dead, ctx)
        result.accepted = len(accepted)
        _count(accepted, reasons, ctx.source)
        return result

    async def reject_request(self, reason: str, code: str, raw: bytes, source: str | None) -> None:
        """Dead-letter a whole request that could not be parsed (best effort, never raises)."""
        metrics.EVENTS_REJECTED.labels(source or "unknown", code).inc()
        with suppress(BrokerUnavailable):
            await self.producer.send(
                self.settings.topic_dead_letter,
                encode_dead_letter(reason, raw, stage="collector", source=source),
            )

    async def _write(
        self, accepted: list[dict[str, Any]], dead: list[Record], ctx: IngestContext
    ) -> None:
        if not accepted and not dead:
            return
        started = time.perf_counter()
        size = min(ctx.body_bytes, self.settings.max_request_bytes)
        try:
            await self.group_commit.write(accepted, dead, ctx.source, size)
        except BrokerUnavailable:
            metrics.PRODUCE_ERRORS.inc()
            raise
        except orjson.JSONEncodeError as exc:  # validation should have refused it first
            raise Problem(400, "Invalid event", f"events cannot be encoded: {exc}") from None
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)


def _count(accepted: list[dict[str, Any]], reasons: Counter[str], source: str) -> None:
    channels = Counter(metric_channel(event["context"]["channel"]) for event in accepted)
    for channel, count in channels.items():
        metrics.EVENTS_ACCEPTED.labels(source, channel).inc(count)
    for reason, count in reasons.items():
        metrics.EVENTS_REJECTED.labels(source, reason).inc(count)
