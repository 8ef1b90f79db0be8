"""Turning channel touchpoints into ingestion: one context per webhook or email request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from collector.ingest import Ingestor, IngestResult
from touchpath.events import IngestContext


async def ingest_channel_events(
    request: Request, ingestor: Ingestor, events: list[dict[str, Any]], source: str, channel: str
) -> IngestResult:
    """Validate and write a channel's touchpoints like any tracked event (acks=all)."""
    if not events:
        return IngestResult()
    ctx = IngestContext(
        source=source,
        default_channel=channel,
        received_at=datetime.now(UTC),
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    return await ingestor.ingest(events, ctx)
