"""``GET /v1/stream/stage-changes``: stage changes as Server-Sent Events, live.

The processor publishes every change on a Redis channel in the same transaction that stores
it; this endpoint relays them (optionally only those into given stages). It is a live view:
a client that disconnects misses what happens meanwhile — the ``touchpath.stage-changes``
Kafka topic is the durable record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from api.deps import ReadScope, Stages
from infra.problems import Problem
from touchpath.keys import Keys

router = APIRouter(prefix="/v1/stream", tags=["stream"])
HEARTBEAT_S = 15.0


@router.get(
    "/stage-changes",
    summary="Live stage changes (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: stage-change` with the change as JSON",
        }
    },
)
async def stage_changes(
    request: Request,
    stages: Stages,
    _: ReadScope,
    stage: Annotated[list[str] | None, Query(description="only changes into these stages")] = None,
) -> StreamingResponse:
    """Each change: ``{change_id, customer_id, identities, from, to, at_ms, kind, …}``."""
    wanted = set(stage or ())
    unknown = wanted - set(stages.stages)
    if unknown:
        raise Problem(400, "Unknown stage", f"unknown stage(s) {sorted(unknown)}")
    channel = Keys(request.app.state.settings.redis_prefix).live_changes
    return StreamingResponse(
        _events(request, channel, wanted),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, channel: str, wanted: set[str]) -> AsyncIterator[bytes]:
    pubsub = request.app.state.redis.pubsub()
    await pubsub.subscribe(channel)
    try:
        yield b": connected\n\n"
        while not await request.is_disconnected():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=HEARTBEAT_S)
            if message is None:
                yield b": heartbeat\n\n"
                continue
            change = orjson.loads(message["data"])
            if not wanted or change["to"] in wanted:
                yield b"event: stage-change\ndata: " + orjson.dumps(change) + b"\n\n"
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()
