"""Signed webhooks of email and chat tools: verify, translate, ingest like tracked events.

Each endpoint answers 401 for a missing, wrong or stale signature, 404 when the tool is not
configured, 400 for a body that is not the tool's shape, and 200 with what was accepted and
what was skipped (a tool retries non-2xx answers, so items we do not map are not errors).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Path, Request

from collector.body import read_body
from collector.channels import ingest_channel_events
from collector.ingest import Ingestor
from collector.replay import ReplayGuard
from collector.routes import IngestorDep
from infra.problems import JSONBody, Problem
from touchpath.adapters import chat, intercom, mailgun, sendgrid, zendesk
from touchpath.adapters.common import PayloadError, Translation
from touchpath.settings_views import CollectorSettings
from touchpath.signatures import SignatureError, verify_standard

T = TypeVar("T")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Source = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,57}$",
        description="Your name for this sender (a slug); recorded as the touchpoints' source.",
    ),
]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Verified; mapped items are durable in Kafka, others listed as skipped."},
    400: {"description": "Not valid JSON or not the tool's payload shape."},
    401: {"description": "Missing, wrong or stale signature, or a replayed request."},
    404: {"description": "This tool's signing key is not configured."},
    503: {"description": "Kafka unavailable; the tool should retry."},
}


def _configured(value: str, variable: str) -> str:
    if not value:
        raise Problem(404, "Not Found", f"this webhook is off: set TOUCHPATH_{variable}")
    return value


def _verified(check: Callable[[], T]) -> T:
    try:
        return check()
    except SignatureError as exc:
        raise Problem(401, "Unauthorized", str(exc)) from None


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Problem(400, "Bad request body", "the body is not valid JSON") from None


async def _ingest(
    request: Request,
    ingestor: Ingestor,
    translate: Callable[[], Translation],
    source: str,
    channel: str,
    once: str,
) -> JSONBody:
    """Translate and write a verified callback whose one-time value is ``once`` (refused as a
    replay when any collector saw it before, see :mod:`collector.replay`)."""
    guard: ReplayGuard = request.app.state.replays
    kind = f"{request.url.path}\0{once}"
    if not await guard.first_use(kind, once):
        raise Problem(401, "Unauthorized", "this request was already received (a replay)")
    try:
        return await _write(request, ingestor, translate, source, channel)
    except BaseException:
        await guard.release(kind, once)
        raise


async def _write(
    request: Request,
    ingestor: Ingestor,
    translate: Callable[[], Translation],
    source: str,
    channel: str,
) -> JSONBody:
    try:
        translation = translate()
    except PayloadError as exc:
        raise Problem(400, "Bad request body", str(exc)) from None
    result = await ingest_channel_events(request, ingestor, translation.events, source, channel)
    return JSONBody(
        {
            "success": True,
            "accepted": result.accepted,
            "skipped": translation.skipped,
            "rejected": result.rejected,
        }
    )


def _digest_of(headers: Mapping[str, str], stamp_header: str, body: bytes) -> str:
    """A signed request's one-time value: its signed timestamp and body (not the signature,
    which an ECDSA signer's signatures are not unique for)."""
    stamp = headers.get(stamp_header, "").encode() if stamp_header else b""
    return hashlib.sha256(stamp + b"\0" + body).hexdigest()


def _settings(ingestor: Ingestor) -> CollectorSettings:
    return ingestor.settings


@router.post("/sendgrid/{source}", summary="SendGrid Event Webhook", responses=_RESPONSES)
async def sendgrid_events(request: Request, source: Source, ingestor: IngestorDep) -> JSONBody:
    """Signed Event Webhook (ECDSA): processed, delivered, open, click, bounce, dropped,
    spamreport, unsubscribe, group_unsubscribe. Unique args `userId`/`anonymousId` name the
    customer; `sg_machine_open` opens are flagged and do not move stages."""
    settings = _settings(ingestor)
    key = sendgrid.load_public_key(_configured(settings.sendgrid_public_key, "SENDGRID_PUBLIC_KEY"))
    body = await read_body(request, settings.max_request_bytes)
    headers = request.headers
    _verified(
        lambda: sendgrid.verify(key, headers, body, time.time(), settings.webhook_tolerance_s)
    )
    payload, once = _json(body), _digest_of(headers, sendgrid.TIMESTAMP_HEADER, body)
    return await _ingest(
        request, ingestor, lambda: sendgrid.translate(payload), source, "email", once
    )


@router.post("/mailgun/{source}", summary="Mailgun webhook", responses=_RESPONSES)
async def mailgun_event(request: Request, source: Source, ingestor: IngestorDep) -> JSONBody:
    """HMAC-SHA256 of timestamp + token; a token is accepted once. accepted, delivered,
    failed, opened, clicked, unsubscribed, complained; `user-variables` name the customer."""
    settings = _settings(ingestor)
    key = _configured(settings.mailgun_signing_key, "MAILGUN_SIGNING_KEY").encode()
    payload = _json(await read_body(request, settings.max_request_bytes))
    tolerance = settings.webhook_tolerance_s
    token = _verified(lambda: mailgun.verify(key, payload, time.time(), tolerance))
    return await _ingest(
        request, ingestor, lambda: mailgun.translate(payload), source, "email", token
    )


@router.post("/intercom/{source}", summary="Intercom conversation webhook", responses=_RESPONSES)
async def intercom_event(request: Request, source: Source, ingestor: IngestorDep) -> JSONBody:
    """`X-Hub-Signature: sha1=…` over the body. conversation.user.created / user.replied /
    admin.replied / admin.closed / rating.added become chat touchpoints."""
    settings = _settings(ingestor)
    secret = _configured(settings.intercom_client_secret, "INTERCOM_CLIENT_SECRET").encode()
    body = await read_body(request, settings.max_request_bytes)
    headers = request.headers
    _verified(lambda: intercom.verify(secret, headers, body))
    payload, tolerance = _json(body), settings.webhook_tolerance_s
    _verified(lambda: intercom.check_fresh(payload, time.time(), tolerance))
    once = _digest_of(headers, "", body)
    return await _ingest(
        request, ingestor, lambda: intercom.translate(payload), source, "chat", once
    )


@router.post("/zendesk/{source}", summary="Zendesk webhook", responses=_RESPONSES)
async def zendesk_event(request: Request, source: Source, ingestor: IngestorDep) -> JSONBody:
    """`X-Zendesk-Webhook-Signature` (base64 HMAC-SHA256 of timestamp + body). Ticket created,
    comment added (customer or agent), solved/closed, satisfaction good/bad (CSAT 5/1)."""
    settings = _settings(ingestor)
    secret = _configured(settings.zendesk_signing_secret, "ZENDESK_SIGNING_SECRET").encode()
    body = await read_body(request, settings.max_request_bytes)
    headers, tolerance = request.headers, settings.webhook_tolerance_s
    _verified(lambda: zendesk.verify(secret, headers, body, time.time(), tolerance))
    payload, once = _json(body), _digest_of(headers, zendesk.TIMESTAMP_HEADER, body)
    return await _ingest(
        request, ingestor, lambda: zendesk.translate(payload), source, "chat", once
    )


@router.post("/chat/{source}", summary="Any chat tool (Standard Webhooks)", responses=_RESPONSES)
async def chat_event(request: Request, source: Source, ingestor: IngestorDep) -> JSONBody:
    """Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Body: `{"type": "conversation.started" | "message.customer" | "message.agent" |
    "conversation.closed" | "satisfaction.rated", "conversation_id", "timestamp",
    "customer": {"id", "email", "user_id"}, "rating"}` or `{"events": [...]}`; see
    docs/channels.md."""
    settings = _settings(ingestor)
    secret = _configured(settings.chat_webhook_secret, "CHAT_WEBHOOK_SECRET")
    body = await read_body(request, settings.max_request_bytes)
    headers, tolerance = request.headers, settings.webhook_tolerance_s
    webhook_id = _verified(lambda: verify_standard(secret, headers, body, time.time(), tolerance))
    payload, now = _json(body), datetime.now(UTC)
    return await _ingest(
        request,
        ingestor,
        lambda: chat.translate(payload, source, webhook_id, now),
        source,
        "chat",
        webhook_id,
    )
