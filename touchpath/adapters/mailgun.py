"""Mailgun webhooks: HMAC-SHA256 verification of ``timestamp + token`` and event mapping.

Body: ``{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}``. The
signature is the hex HMAC-SHA256 of ``timestamp + token`` under the webhook signing key; a
token is used once, so a seen token is a replay (the collector keeps them for the tolerance).
``user-variables`` (``v:`` variables on the message) may carry ``userId`` / ``anonymousId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from touchpath.adapters.common import (
    PayloadError,
    Translation,
    Who,
    content_id,
    epoch_time,
    mapping,
    text,
    touchpoint,
)
from touchpath.email_links import is_link_scanner
from touchpath.signatures import SignatureError, check_timestamp, hmac_hex, same

EVENT_NAMES = {
    "accepted": "Email Processed",
    "delivered": "Email Delivered",
    "failed": "Email Bounced",
    "opened": "Email Opened",
    "clicked": "Email Link Clicked",
    "unsubscribed": "Unsubscribed",
    "complained": "Email Marked as Spam",
}


def verify(key: bytes, payload: object, now: float, tolerance_s: int) -> str:
    """Check a Mailgun body's signature; returns its one-time token or raises SignatureError."""
    signature = mapping(mapping(payload).get("signature"))
    stamp, token, given = (str(signature.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not token or not given:
        raise SignatureError("the Mailgun signature block needs timestamp, token and signature")
    check_timestamp(stamp, now, tolerance_s)
    if not same(hmac_hex(key, (stamp + token).encode()), given.lower()):
        raise SignatureError("the Mailgun signature does not match")
    return token


def translate(payload: object) -> Translation:
    """The touchpoint of a Mailgun webhook (one event per request)."""
    data = mapping(mapping(payload).get("event-data"))
    if not data:
        raise PayloadError("a Mailgun webhook body needs an event-data object")
    result = Translation()
    name = EVENT_NAMES.get(str(data.get("event")))
    at = epoch_time(data.get("timestamp"))
    if name is None or at is None or not text(data.get("recipient")):
        result.skip(0, "not a mapped Mailgun event with recipient and timestamp")
        return result
    variables = mapping(data.get("user-variables"))
    who = Who(
        email=text(data.get("recipient")),
        user_id=text(variables.get("userId") or variables.get("user_id")),
        anonymous_id=text(variables.get("anonymousId") or variables.get("anonymous_id")),
    )
    message_id = text(data.get("id")) or content_id("mg", data)
    result.events.append(touchpoint(name, who, at, "email", f"mg-{message_id}", _props(data)))
    return result


def _props(data: Mapping[str, Any]) -> dict[str, Any]:
    client = mapping(data.get("client-info"))
    headers = mapping(mapping(data.get("message")).get("headers"))
    campaigns = data.get("campaigns")
    first_campaign = mapping(campaigns[0]) if isinstance(campaigns, list) and campaigns else {}
    variables = mapping(data.get("user-variables"))
    machine = bool(client.get("bot")) and data.get("event") == "opened"
    agent = text(client.get("user-agent"), 512)
    scanner = data.get("event") == "clicked" and (
        bool(client.get("bot")) or (agent is not None and is_link_scanner(agent, "GET"))
    )
    return {
        "email_id": text(headers.get("message-id")),
        "mailgun_event": data.get("event"),
        "url": text(data.get("url"), 2048),
        "reason": text(data.get("reason") or data.get("severity")),
        "campaign_id": text(variables.get("campaign") or first_campaign.get("id")),
        "tags": data.get("tags") if isinstance(data.get("tags"), list) else None,
        "machine_open": True if machine else None,
        "link_scanner": True if scanner else None,
    }
