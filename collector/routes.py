"""Segment HTTP Tracking API endpoints: /v1/track, identify, page, screen, group, alias, batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from collector.auth import authenticate
from collector.body import BodyError, decode_body, read_body
from collector.ingest import Ingestor, IngestResult
from infra.problems import JSONBody, Problem
from infra.routing import DirectRoute
from touchpath.events import EVENT_TYPES, IngestContext

router = APIRouter(tags=["tracking"], route_class=DirectRoute)
#: analytics.js (analytics-next) posts to one-letter paths.
SHORT_PATHS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "messageId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "writeKey": {"type": "string"},
    },
    "example": {"userId": "u-42", "event": "Order Completed", "properties": {"revenue": 49.0}},
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": _EVENT_SCHEMA},
        "sentAt": {"type": "string"},
        "context": {"type": "object"},
        "writeKey": {"type": "string"},
    },
}
_REJECTED = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "reason": {"type": "string"},
            "code": {"type": "string"},
        },
    },
}
_ACCEPTED_SCHEMA = {
    "type": "object",
    "required": ["success", "accepted"],
    "properties": {
        "success": {"type": "boolean"},
        "accepted": {"type": "integer"},
        "rejected": _REJECTED,
    },
    "example": {
        "success": True,
        "accepted": 2,
        "rejected": [{"index": 1, "reason": "group needs a groupId", "code": "missing_field"}],
    },
}
_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "required": ["title", "status", "detail", "code", "message"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string", "description": "stable reason, e.g. unauthorized"},
                "message": {"type": "string", "description": "= detail (for Segment clients)"},
                "rejected": _REJECTED,
            },
        }
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Accepted: every listed event is durable in Kafka (acks=all).",
        "content": {"application/json": {"schema": _ACCEPTED_SCHEMA}},
    },
    400: {"description": "Body or every event invalid; reasons per index.", "content": _PROBLEM},
    401: {"description": "Missing or unknown write key.", "content": _PROBLEM},
    413: {"description": "Event over 32 KB or request over 500 KB.", "content": _PROBLEM},
    429: {
        "description": "Rate limit exceeded; retry after Retry-After seconds.",
        "content": _PROBLEM,
    },
    503: {
        "description": "Kafka unavailable; retry after Retry-After seconds.",
        "content": _PROBLEM,
    },
}


async def get_ingestor(request: Request) -> Ingestor:
    """The app's ingestor (built in the lifespan, never at import time). ``async`` on purpose:
    FastAPI runs a plain ``def`` dependency in a thread pool, a thread hop per request."""
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]


async def _receive(request: Request, ingestor: Ingestor, kind: str | None) -> JSONBody:
    settings = ingestor.settings
    request.app.state.limits.check_ip(request.client.host if request.client else None)
    raw = await read_body(request, settings.max_request_bytes)
    try:
        body, body_bytes = decode_body(
            raw, request.headers.get("content-encoding"), settings.max_request_bytes
        )
    except BodyError as exc:
        source = authenticate(request, None, settings.write_keys)
        await ingestor.reject_request(exc.detail, exc.code, raw, source.source)
        raise
    source = authenticate(request, body, settings.write_keys)
    request.app.state.limits.check_key(source.source)
    events, sent_at = _events_of(body, kind)
    ctx = IngestContext(
        source=source.source,
        default_channel=source.channel,
        received_at=datetime.now(UTC),
        sent_at=sent_at,
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        body_bytes=body_bytes,
        trust=source.trust,
        verification_secret=source.verification_secret,
    )
    result = await ingestor.ingest(events, ctx, forced_type=kind)
    return _answer(result, single=kind is not None)


def _events_of(body: object, kind: str | None) -> tuple[list[object], str | None]:
    if not isinstance(body, dict):
        raise Problem(400, "Bad request body", "request body must be a JSON object")
    sent_at = body.get("sentAt") if isinstance(body.get("sentAt"), str) else None
    if kind is not None:
        return [body], sent_at
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        raise Problem(400, "Bad request body", "batch must be a non-empty array of events")
    shared = body.get("context")
    if isinstance(shared, dict):
        batch = [_with_context(item, shared) for item in batch]
    return batch, sent_at


def _with_context(item: object, shared: dict[str, Any]) -> object:
    if not isinstance(item, dict):
        return item
    own = item.get("context")
    return {**item, "context": {**shared, **own} if isinstance(own, dict) else shared}


def _answer(result: IngestResult, single: bool) -> JSONBody:
    if result.accepted:
        body: dict[str, Any] = {"success": True, "accepted": result.accepted}
        if result.rejected:
            body["rejected"] = result.rejected
        return JSONBody(body)
    first = result.rejected[0]
    too_large = single and first["code"] == "too_large"
    raise Problem(
        413 if too_large else 400,
        "Payload too large" if too_large else "Invalid event",
        first["reason"] if single else "no event in the batch is valid",
        code=first["code"] if single else "no_valid_event",
        rejected=result.rejected,
    )


def _register(path: str, kind: str | None) -> None:
    async def endpoint(request: Request) -> JSONBody:
        return await _receive(request, request.app.state.ingestor, kind)

    schema = _EVENT_SCHEMA if kind else _BATCH_SCHEMA
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        name=f"ingest_{path.rsplit('/', 1)[-1]}",
        summary=f"Ingest {'a ' + kind + ' event' if kind else 'a batch of events'} (Segment spec)",
        responses=_RESPONSES,
        include_in_schema=len(path) > 5,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": schema},
                    "text/plain": {"schema": schema},
                },
            }
        },
    )


for _kind in sorted(EVENT_TYPES):
    _register(f"/v1/{_kind}", _kind)
for _short, _kind in SHORT_PATHS.items():
    _register(f"/v1/{_short}", _kind)
_register("/v1/batch", None)
_register("/v1/b", None)
