"""SendGrid Event Webhook: signed-webhook verification (ECDSA P-256) and event mapping.

SendGrid signs ``timestamp + raw body`` with ECDSA over SHA-256 and sends the base64 DER
signature in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``; the public key (base64 DER) is shown in the
SendGrid console. The body is a JSON array of events; unique arguments sent with the mail
appear as top-level keys, and ``userId`` / ``anonymousId`` among them name our customer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

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
from touchpath.signatures import SignatureError, check_timestamp

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
EVENT_NAMES = {
    "processed": "Email Processed",
    "delivered": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "bounce": "Email Bounced",
    "dropped": "Email Dropped",
    "spamreport": "Email Marked as Spam",
    "unsubscribe": "Unsubscribed",
    "group_unsubscribe": "Unsubscribed",
}
#: Fields SendGrid sets itself; every other top-level key is a custom argument.
_OWN_FIELDS = frozenset(
    {
        "email",
        "timestamp",
        "event",
        "sg_event_id",
        "sg_message_id",
        "smtp-id",
        "category",
        "url",
        "url_offset",
        "useragent",
        "ip",
        "reason",
        "status",
        "response",
        "attempt",
        "type",
        "bounce_classification",
        "tls",
        "cert_err",
        "asm_group_id",
        "sg_machine_open",
        "marketing_campaign_id",
        "marketing_campaign_name",
        "sg_template_id",
        "sg_template_name",
        "pool",
    }
)
#: Ids that SendGrid may change on a retry; the content hash leaves them out.
_RETRY_VARIANT = ("sg_event_id",)


def load_public_key(text_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text (as the SendGrid console shows it)."""
    try:
        key = load_der_public_key(base64.b64decode(text_key.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base64 DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    return key


def verify(
    key: ec.EllipticCurvePublicKey,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int,
) -> None:
    """Raise SignatureError unless the body is signed by ``key`` at a recent timestamp."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    check_timestamp(stamp, now, tolerance_s)
    try:
        signature = base64.b64decode(headers.get(SIGNATURE_HEADER, ""), validate=True)
        key.verify(signature, stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature, ValueError):
        raise SignatureError("the SendGrid signature does not match the body") from None


def translate(payload: object) -> Translation:
    """SendGrid events as touchpoints; events of other kinds or without a recipient skipped."""
    if not isinstance(payload, list):
        raise PayloadError("a SendGrid Event Webhook body is a JSON array of events")
    result = Translation()
    seen: set[str] = set()
    for index, item in enumerate(payload):
        event = mapping(item)
        name = EVENT_NAMES.get(str(event.get("event")))
        at = epoch_time(event.get("timestamp"))
        if name is None or at is None or not text(event.get("email")):
            result.skip(index, "not a mapped SendGrid event with email and timestamp")
            continue
        event_id = text(event.get("sg_event_id"))
        if event_id and event_id in seen:
            result.skip(index, "duplicate sg_event_id")
            continue
        seen.add(event_id or "")
        result.events.append(_touchpoint(name, event))
    return result


def _touchpoint(name: str, event: Mapping[str, Any]) -> dict[str, Any]:
    custom = {k: v for k, v in event.items() if k not in _OWN_FIELDS}
    who = Who(
        email=text(event.get("email")),
        user_id=text(custom.get("userId") or custom.get("user_id")),
        anonymous_id=text(custom.get("anonymousId") or custom.get("anonymous_id")),
    )
    at = epoch_time(event["timestamp"])
    assert at is not None
    categories = event.get("category")
    props = {
        "email_id": text(event.get("sg_message_id")),
        "sendgrid_event": event.get("event"),
        "url": text(event.get("url"), 2048),
        "reason": text(event.get("reason"), 512),
        "bounce_type": text(event.get("type")),
        "asm_group_id": event.get("asm_group_id"),
        "campaign_id": text(custom.get("campaign") or event.get("marketing_campaign_id")),
        "category": categories if isinstance(categories, list | str) else None,
        "machine_open": True if event.get("sg_machine_open") is True else None,
        "link_scanner": _scanner_click(event),
    }
    message_id = content_id("sg", event, leave_out=_RETRY_VARIANT)
    return touchpoint(name, who, at, "email", message_id, props)


def _scanner_click(event: Mapping[str, Any]) -> bool | None:
    agent = text(event.get("useragent"), 512)
    if event.get("event") != "click" or agent is None:
        return None
    return True if is_link_scanner(agent, "GET") else None
