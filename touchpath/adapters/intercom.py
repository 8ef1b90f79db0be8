"""Intercom conversation webhooks: ``X-Hub-Signature`` (HMAC-SHA1 of the body) and mapping.

Intercom signs the raw body with the app's client secret and sends ``sha1=<hex>``. A
notification names a ``topic`` and carries the conversation in ``data.item``; the customer is
the conversation's first contact (its Intercom id becomes the external id ``intercom_user``,
its ``external_id`` our user id) or the author of the conversation's source.
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
from touchpath.adapters.common import PayloadError, Translation, Who, epoch_time, mapping, text
from touchpath.signatures import SignatureError, hmac_hex, same

SIGNATURE_HEADER = "x-hub-signature"
TOPICS = {
    "conversation.user.created": STARTED,
    "conversation.user.replied": CUSTOMER_MESSAGE,
    "conversation.admin.replied": AGENT_MESSAGE,
    "conversation.admin.closed": CLOSED,
    "conversation.rating.added": CSAT,
}


def verify(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureError unless ``X-Hub-Signature`` is the body's HMAC-SHA1 under ``secret``."""
    scheme, _, given = headers.get(SIGNATURE_HEADER, "").partition("=")
    if scheme != "sha1" or not given:
        raise SignatureError("X-Hub-Signature must be sha1=<hex digest>")
    if not same(hmac_hex(secret, body, "sha1"), given.strip().lower()):
        raise SignatureError("the Intercom signature does not match the body")


def check_fresh(payload: object, now: float, tolerance_s: float) -> None:
    """Raise SignatureError unless the notification's ``created_at`` (epoch seconds, inside the
    signed body) is within ``tolerance_s`` of ``now``: Intercom signs no timestamp header, so a
    captured request replayed later is refused by this time."""
    created = mapping(payload).get("created_at")
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise SignatureError("an Intercom notification needs created_at (epoch seconds)")
    if abs(now - float(created)) > tolerance_s:
        raise SignatureError("the Intercom notification is too old (or from the future)")


def translate(payload: object) -> Translation:
    """The touchpoint of an Intercom notification (topics outside :data:`TOPICS` skipped)."""
    body = mapping(payload)
    item = mapping(mapping(body.get("data")).get("item"))
    if not body.get("topic") or not item:
        raise PayloadError("an Intercom notification needs topic and data.item")
    result = Translation()
    name = TOPICS.get(str(body["topic"]))
    at = epoch_time(body.get("created_at") or item.get("updated_at") or item.get("created_at"))
    who = _customer(item)
    if name is None or at is None or who is None:
        result.skip(0, f"topic {body['topic']!r} is not mapped or names no customer")
        return result
    event_id = text(body.get("id"), 150) or f"{item.get('id')}-{body['topic']}-{at.timestamp()}"
    rating = mapping(item.get("conversation_rating")).get("rating")
    touch = chat_touchpoint(name, who, at, f"ic-{event_id}", text(item.get("id")), rating)
    result.events.append(touch)
    return result


def _customer(item: Mapping[str, Any]) -> Who | None:
    contacts = mapping(item.get("contacts")).get("contacts")
    contact = mapping(contacts[0]) if isinstance(contacts, list) and contacts else {}
    author = mapping(mapping(item.get("source")).get("author"))
    if not contact and author.get("type") in ("user", "lead", "contact"):
        contact = author
    contact_id = text(contact.get("id"))
    email = text(contact.get("email")) or (
        text(author.get("email")) if author.get("type") != "admin" else None
    )
    who = Who(
        email=email,
        user_id=text(contact.get("external_id")),
        external=(("intercom_user", contact_id),) if contact_id else (),
    )
    return who if (who.email or who.user_id or who.external) else None
