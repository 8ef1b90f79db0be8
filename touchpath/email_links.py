"""Signed email links: the open pixel and the click redirect, and their touchpoints (pure).

A token is ``base64url(JSON fields) "." base64url(HMAC-SHA256(key, first part))``. It carries
the recipient, campaign, message and (for clicks) the target URL, so the redirect only ever
goes where the sender signed it to go: a tampered or unsigned token is refused, never followed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from touchpath.adapters.common import Who, touchpoint
from touchpath.identifiers import is_junk, normalize_email

#: Segment's analytics.js cookie, also written by touchpath.js: the browser's anonymous id.
ANONYMOUS_ID_COOKIE = "ajs_anonymous_id"
#: Substrings of user agents of security gateways that pre-fetch every link in a message.
LINK_SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "trendmicro",
    "forcepoint",
    "symantec",
    "sophos",
    "bitdefender",
    "fortiguard",
    "cisco",
    "ironport",
    "zscaler",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
)
#: Apple's Mail Privacy Protection fetches every image from Apple's network with a bare UA.
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_BARE_MOZILLA = "mozilla/5.0"


class InvalidToken(ValueError):
    """An email link token that is malformed, unsigned or tampered with (answer 400)."""


@dataclass(frozen=True, slots=True)
class EmailLink:
    """What a signed email link stands for."""

    recipient: str
    campaign: str
    message: str
    url: str | None = None


def sign_token(key: bytes, link: EmailLink) -> str:
    """The signed token of ``link``."""
    if not key:
        raise ValueError("an email link key is required (TOUCHPATH_EMAIL_LINK_KEY)")
    if link.url is not None:
        _check_target(link.url)
    fields = {"r": link.recipient, "c": link.campaign, "m": link.message}
    if link.url is not None:
        fields["u"] = link.url
    body = _b64(orjson.dumps(fields))
    return f"{body}.{_b64(_mac(key, body))}"


def read_token(key: bytes, token: str) -> EmailLink:
    """The link a token stands for; InvalidToken unless it is well-formed and signed by ``key``."""
    body, dot, signature = token.partition(".")
    if not key or not dot or not body or not signature:
        raise InvalidToken("the link token is malformed or unsigned")
    try:
        given = _unb64(signature)
        fields = orjson.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise InvalidToken("the link token is malformed") from None
    if not hmac.compare_digest(given, _mac(key, body)):
        raise InvalidToken("the link token's signature does not match (tampered or foreign)")
    if not isinstance(fields, dict) or not all(
        isinstance(fields.get(k), str) for k in ("r", "c", "m")
    ):
        raise InvalidToken("the link token lacks recipient, campaign or message")
    url = fields.get("u")
    if url is not None:
        _check_target(url)
    return EmailLink(fields["r"], fields["c"], fields["m"], url)


def pixel_url(base_url: str, key: bytes, recipient: str, campaign: str, message: str) -> str:
    """The open-tracking pixel URL (``<img src=…>``) of one recipient of one message."""
    token = sign_token(key, EmailLink(recipient, campaign, message))
    return f"{base_url.rstrip('/')}/v1/email/open/{quote(token)}.gif"


def click_url(
    base_url: str, key: bytes, *, recipient: str, campaign: str, message: str, url: str
) -> str:
    """The tracked link to ``url`` for one recipient of one message."""
    token = sign_token(key, EmailLink(recipient, campaign, message, url))
    return f"{base_url.rstrip('/')}/v1/email/click/{quote(token)}"


def is_machine_open(user_agent: str | None, ip: str | None) -> bool:
    """An open made by a privacy proxy or a scanner rather than a person reading."""
    agent = (user_agent or "").strip().lower()
    if agent == _BARE_MOZILLA and ip:
        try:
            return ipaddress.ip_address(ip) in _APPLE_NETWORK
        except ValueError:
            return False
    return is_link_scanner(user_agent, "GET")


def is_link_scanner(user_agent: str | None, method: str) -> bool:
    """A click made by a security gateway pre-fetching links (or a HEAD probe), not a person."""
    agent = (user_agent or "").lower()
    return method.upper() == "HEAD" or not agent or any(s in agent for s in LINK_SCANNER_AGENTS)


def anonymous_id_from_cookie(value: str | None) -> str | None:
    """The anonymous id in an ``ajs_anonymous_id`` cookie (plain or JSON-quoted, URL-encoded)."""
    if not value:
        return None
    text = unquote(value).strip().strip('"').strip()
    return None if is_junk(text) or len(text) > 200 else text


def open_event(link: EmailLink, at: datetime, machine: bool) -> dict[str, Any]:
    """The ``Email Opened`` touchpoint of a pixel fetch."""
    return _email_event("Email Opened", link, at, {"machine_open": machine or None}, None)


def click_event(
    link: EmailLink, at: datetime, scanner: bool, anonymous_id: str | None
) -> dict[str, Any]:
    """The ``Email Link Clicked`` touchpoint; an anonymous id ties the browser to the person."""
    props = {"url": link.url, "link_scanner": scanner or None}
    return _email_event("Email Link Clicked", link, at, props, None if scanner else anonymous_id)


def _email_event(
    name: str, link: EmailLink, at: datetime, extra: dict[str, Any], anonymous_id: str | None
) -> dict[str, Any]:
    email = normalize_email(link.recipient)
    who = Who(email=email, anonymous_id=anonymous_id)
    digest = hashlib.blake2b(
        f"{name}|{link.message}|{link.recipient}|{link.url}|{at.isoformat()}|{anonymous_id}".encode(),
        digest_size=16,
    ).hexdigest()
    props = {"campaign_id": link.campaign, "email_id": link.message, **extra}
    event = touchpoint(name, who, at, "email", f"eml-{digest}", props)
    event["context"]["campaign"] = {"name": link.campaign, "medium": "email"}
    return event


def _check_target(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidToken("a click link must point to an http(s) URL")


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
