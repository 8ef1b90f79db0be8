"""``GET /v1/stream/stage-changes``: stage changes as Server-Sent Events, resumable.

The processor appends every change to a capped Redis stream in the same transaction that
stores it; this endpoint relays them (optionally only those into given stages) through the
process's one shared reader (:mod:`api.stream_hub`). Each event's ``id:`` is the change's
stream entry id; a client reconnecting with ``Last-Event-ID`` gets every change after it that
is still kept (the latest ~10,000), without gaps or repeats, then the live ones. When changes
after that id were trimmed already, an ``event: gap`` comes first. Streams per process are
capped (``TOUCHPATH_STREAM_MAX_CLIENTS``): past the cap the answer is a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import ReadScope, Stages
from api.docs import problem
from api.stream_hub import ENTRY_ID, Listener, StreamHub, StreamsFull, entry_key
from infra.problems import Problem

router = APIRouter(prefix="/v1/stream", tags=["stream"])
HEARTBEAT_S = 15.0
RETRY_AFTER_S = 5


class _Stream(StreamingResponse):
    """A streaming response that runs ``on_end`` however it ends (even before it starts)."""

    def __init__(self, body: AsyncIterator[bytes], on_end: Callable[[], None]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_end()


@router.get(
    "/stage-changes",
    summary="Stage changes (Server-Sent Events), resumable with Last-Event-ID",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`id: <stream entry id>`, `event: stage-change`, the change as JSON",
        },
        **problem(503, "This process serves as many streams as it may; retry later."),
    },
)
async def stage_changes(
    request: Request,
    stages: Stages,
    _: ReadScope,
    stage: Annotated[
        list[str] | None,
        Query(description="only announcements about these stages (entered or corrected)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="resume after this event (sent by EventSource when it reconnects)",
        ),
    ] = None,
) -> StreamingResponse:
    """Each announcement: ``{change_id, customer_id, identities, stage, change, from, to,
    at_ms, message_id, channel, previous_at_ms, previous_message_id, current, kind,
    merged_from}`` (docs/webhooks.md)."""
    wanted = set(stage or ())
    unknown = wanted - set(stages.stages)
    if unknown:
        raise Problem(400, "Unknown stage", f"unknown stage(s) {sorted(unknown)}")
    after = (last_event_id or "").strip() or None
    if after is not None and not ENTRY_ID.match(after):
        raise Problem(400, "Bad Last-Event-ID", "Last-Event-ID must be an event id of this stream")
    hub: StreamHub = request.app.state.stream_hub
    try:
        listener = await hub.join()
    except StreamsFull:
        raise Problem(
            503,
            "Too many streams",
            f"this API process serves at most {hub.max_listeners} streams "
            "(TOUCHPATH_STREAM_MAX_CLIENTS); retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    return _Stream(_events(listener, after, wanted), listener.close)


async def _events(listener: Listener, after: str | None, wanted: set[str]) -> AsyncIterator[bytes]:
    """Kept changes after ``after`` (if given), then the live ones, each once."""
    yield b": connected\n\n"
    last = after
    if after is not None:
        oldest = await listener.hub.trimmed_after(after)
        if oldest is not None:
            gap = {"after": after, "oldest_kept": oldest}
            yield b"event: gap\ndata: " + orjson.dumps(gap) + b"\n\n"
        async for entry_id, change in listener.hub.since(after):
            last = entry_id
            if event := _event(entry_id, change, wanted):
                yield event
    while True:  # a client hanging up cancels this (Starlette watches for the disconnect)
        if listener.overflowed and listener.queue.empty():
            return  # fell behind: the client resumes from its Last-Event-ID
        try:
            entry_id, change = await _next(listener)
        except TimeoutError:
            yield b": heartbeat\n\n"
            continue
        if last is not None and entry_key(entry_id) <= entry_key(last):
            continue  # read by the catch-up already
        last = entry_id
        if event := _event(entry_id, change, wanted):
            yield event


async def _next(listener: Listener) -> tuple[str, bytes]:
    return await asyncio.wait_for(listener.queue.get(), HEARTBEAT_S)


def _event(entry_id: str, raw: bytes, wanted: set[str]) -> bytes:
    """The SSE lines of a change (or of a trigger firing: ``event: trigger-fired`` /
    ``trigger-cancelled``); nothing when its stage is not wanted (firings: a stage filter)."""
    kind = b"stage-change"
    if raw.startswith(b'{"firing_id"'):  # firings are written with this first key
        kind = b"trigger-cancelled" if b'"kind":"trigger.cancelled"' in raw else b"trigger-fired"
        if wanted:
            return b""
    elif wanted and _stage_of(orjson.loads(raw)) not in wanted:
        return b""
    return b"id: " + entry_id.encode() + b"\nevent: " + kind + b"\ndata: " + raw + b"\n\n"


def _stage_of(change: dict[str, object]) -> object:
    """The stage an announcement is about (``to`` in those stored before ``stage`` was)."""
    return change.get("stage", change.get("to"))
