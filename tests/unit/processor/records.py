"""Touchpoint records for the processor's step tests, as the collector writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from infra.streams import Batch, Partition
from infra.streams.memory import MemoryRecord
from touchpath.events import IngestContext, normalize_event
from touchpath.identity import IdentityPolicy
from touchpath.records import encode_touchpoints
from touchpath.stages import load_stage_model

MODEL = load_stage_model(None)
POLICY = IdentityPolicy()
TOPIC = "touchpoints"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def event(user: str, message_id: str, name: str = "Product Viewed") -> dict[str, Any]:
    """One accepted track event."""
    raw = {"type": "track", "event": name, "userId": user, "messageId": message_id}
    ctx = IngestContext(source="website", default_channel="web", received_at=NOW)
    return normalize_event(raw, ctx)


def batch(*values: bytes | None, partition: int = 0, first_offset: int = 0) -> Batch:
    """Record values as one polled batch of one partition."""
    records = [
        MemoryRecord(TOPIC, partition, first_offset + n, None, value)
        for n, value in enumerate(values)
    ]
    return {Partition(TOPIC, partition): records}


def record(*events: dict[str, Any]) -> bytes:
    return encode_touchpoints(list(events), "website")
