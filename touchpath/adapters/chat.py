"""Chat touchpoints, and the generic chat webhook (Standard Webhooks signed) any tool can send.

The generic body (one object, or ``{"events": [...]}`` for several)::

    {"type": "conversation.started" | "message.customer" | "message.agent"
             | "conversation.closed" | "satisfaction.rated",
     "id": "evt-1",                       # optional; the webhook-id is used otherwise
     "conversation_id": "c-42",
     "timestamp": "2026-11-24T10:00:00Z",  # ISO-8601 or Unix seconds; default: now
     "customer": {"id": "v-7", "email": "ada@example.com", "user_id": "u-1"},
     "rating": 5}                          # satisfaction.rated only: CSAT 1-5

``customer.id`` is the tool's own visitor id, stored as the external id ``<source>_user``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from touchpath.adapters.common import (
    PayloadError,
    Translation,
    Who,
    epoch_time,
    mapping,
    text,
    touchpoint,
)
from touchpath.events import InvalidEvent, parse_time
from touchpath.identifiers import normalize_external_type

STARTED = "Live Chat Conversation Started"
CUSTOMER_MESSAGE = "Live Chat Message Sent"
AGENT_MESSAGE = "Live Chat Message Received"
CLOSED = "Live Chat Conversation Ended"
CSAT = "CSAT Survey Answered"
GENERIC_TYPES = {
    "conversation.started": STARTED,
    "message.customer": CUSTOMER_MESSAGE,
    "message.agent": AGENT_MESSAGE,
    "conversation.closed": CLOSED,
    "satisfaction.rated": CSAT,
}


def chat_touchpoint(
    name: str,
    who: Who,
    at: datetime,
    message_id: str,
    conversation_id: str | None,
    rating: object = None,
) -> dict[str, Any]:
    """A chat touchpoint; a satisfaction rating becomes a CSAT answer (``score`` 1-5)."""
    props: dict[str, Any] = {"conversation_id": conversation_id}
    if name == CSAT:
        props["score"] = rating
    return touchpoint(name, who, at, "chat", message_id, props)


def external_type(source: str) -> str:
    """The external id type of a chat tool's visitor ids (``intercom_user``, ``crisp_user``)."""
    kind = normalize_external_type(f"{source}_user")
    if kind is None:
        raise ValueError(f"{source!r} cannot name an external id type")
    return kind


def translate(payload: object, source: str, webhook_id: str, now: datetime) -> Translation:
    """Touchpoints of a generic chat webhook body (see the module docstring)."""
    body = mapping(payload)
    items = body.get("events") if "events" in body else [payload]
    if not isinstance(items, list) or not body:
        raise PayloadError('a chat webhook body is an event object or {"events": [...]}')
    result = Translation()
    for index, item in enumerate(items):
        try:
            result.events.append(_generic(mapping(item), source, f"{webhook_id}-{index}", now))
        except PayloadError as exc:
            result.skip(index, str(exc))
    return result


def _generic(
    item: Mapping[str, Any], source: str, fallback_id: str, now: datetime
) -> dict[str, Any]:
    name = GENERIC_TYPES.get(str(item.get("type")))
    if name is None:
        raise PayloadError(f"type must be one of {sorted(GENERIC_TYPES)}")
    customer = mapping(item.get("customer"))
    visitor = text(customer.get("id"))
    who = Who(
        email=text(customer.get("email")),
        user_id=text(customer.get("user_id")),
        external=((external_type(source), visitor),) if visitor else (),
    )
    if not (who.email or who.user_id or visitor):
        raise PayloadError("customer needs an id, email or user_id")
    event_id = text(item.get("id"), 150) or fallback_id
    return chat_touchpoint(
        name,
        who,
        _when(item.get("timestamp"), now),
        f"chat-{source}-{event_id}",
        text(item.get("conversation_id")),
        item.get("rating"),
    )


def _when(value: object, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        try:
            return parse_time(value, "timestamp")
        except InvalidEvent as exc:
            raise PayloadError(str(exc)) from None
    moment = epoch_time(value)
    if moment is None:
        raise PayloadError("timestamp must be ISO-8601 or Unix seconds")
    return moment
