"""Zendesk webhooks: ``X-Zendesk-Webhook-Signature`` (base64 HMAC-SHA256 of timestamp + body).

Zendesk signs ``timestamp + body`` and sends the ISO-8601 timestamp in
``X-Zendesk-Webhook-Signature-Timestamp``. Events follow Zendesk's event-subscription shape
(``type: zen:event-type:ticket.created`` …, ``detail``: the ticket, ``event``: what changed);
the requester's Zendesk id becomes the external id ``zendesk_user``, and a requester email or
``external_id`` in ``detail`` is used when present. A satisfaction rating of ``good``/``bad``
is a CSAT answer of 5/1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from touchpath.adapters.chat import (
    AGENT_MESSAGE,
    CLOSED,
    CSAT,
    CUSTOMER_MESSAGE,
    STARTED,
    chat_touchpoint,
)
from touchpath.adapters.common import PayloadError, Translation, Who, mapping, text
from touchpath.events import InvalidEvent, parse_time
from touchpath.signatures import SignatureError, hmac_base64, same

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
_PREFIX = "zen:event-type:"
_CLOSED_STATUSES = frozenset({"solved", "closed"})
_RATINGS = {"good": 5, "bad": 1}


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float, tolerance_s: int
) -> None:
    """Raise SignatureError unless the signature matches and its timestamp is recent."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    try:
        moment = parse_time(stamp, "timestamp").timestamp()
    except InvalidEvent:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be an ISO-8601 time") from None
    if abs(now - moment) > tolerance_s:
        raise SignatureError(f"the signature timestamp is more than {tolerance_s} s away from now")
    given = headers.get(SIGNATURE_HEADER, "")
    if not given or not same(hmac_base64(secret, stamp.encode() + body), given.strip()):
        raise SignatureError("the Zendesk signature does not match the body")


def translate(payload: object) -> Translation:
    """The touchpoint of a Zendesk ticket event (other event types skipped)."""
    body = mapping(payload)
    detail = mapping(body.get("detail"))
    if not str(body.get("type", "")).startswith(_PREFIX) or not detail:
        raise PayloadError("a Zendesk event needs type zen:event-type:… and detail")
    result = Translation()
    name, rating = _meaning(str(body["type"]).removeprefix(_PREFIX), mapping(body.get("event")))
    who = _requester(detail)
    try:
        at = parse_time(body.get("time"), "time")
    except InvalidEvent as exc:
        raise PayloadError(str(exc)) from None
    if name is None or who is None:
        result.skip(0, f"event {body['type']!r} is not mapped or names no requester")
        return result
    event_id = text(body.get("id"), 150) or f"{detail.get('id')}-{body['type']}-{at.isoformat()}"
    result.events.append(
        chat_touchpoint(name, who, at, f"zd-{event_id}", text(detail.get("id")), rating)
    )
    return result


def _meaning(kind: str, event: Mapping[str, Any]) -> tuple[str | None, int | None]:
    if kind == "ticket.created":
        return STARTED, None
    if kind == "ticket.comment_added":
        author = mapping(mapping(event.get("comment")).get("author"))
        return (AGENT_MESSAGE if author.get("is_staff") else CUSTOMER_MESSAGE), None
    if kind == "ticket.status_changed":
        status = str(event.get("current", "")).lower()
        return (CLOSED if status in _CLOSED_STATUSES else None), None
    if kind.startswith("ticket.satisfaction") or kind.startswith("ticket.csat"):
        score = str(mapping(event.get("current")).get("score", event.get("current", ""))).lower()
        return (CSAT, _RATINGS[score]) if score in _RATINGS else (None, None)
    return None, None


def _requester(detail: Mapping[str, Any]) -> Who | None:
    requester = mapping(detail.get("requester"))
    zendesk_id = text(detail.get("requester_id") or requester.get("id"))
    who = Who(
        email=text(requester.get("email")),
        user_id=text(requester.get("external_id")),
        external=(("zendesk_user", zendesk_id),) if zendesk_id else (),
    )
    return who if (who.email or who.user_id or who.external) else None
