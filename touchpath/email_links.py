"""Email links: the open pixel and the click redirect, and their touchpoints (pure).

A token is a Fernet token (``cryptography``: AES-128-CBC + HMAC-SHA256, with the time it was
made) of ``{recipient, campaign, message[, url]}``, written in base64url *without* padding.
Encrypted, so the URL shows no address (the recipient is an opaque reference to whoever
holds the key); authenticated, so the redirect only ever goes where the sender signed it to
go; timed, so a link stops working ``TOUCHPATH_EMAIL_LINK_TTL_DAYS`` after it was made. The
encoding is strict: exactly the base64url alphabet, canonical, no padding — a token with
anything appended (``==`` say) is refused. Tokens verify under the current key and every
key in ``TOUCHPATH_EMAIL_LINK_OLD_KEYS``, so rotating the key keeps the links in emails
already sent working until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as FernetInvalid

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


def sign_token(key: bytes, link: EmailLink, now: datetime | None = None) -> str:
    """The token of ``link`` under ``key`` (made ``now``, by default the current time)."""
    if not key:
        raise ValueError("an email link key is required (TOUCHPATH_EMAIL_LINK_KEY)")
    if link.url is not None:
        _check_target(link.url)
    fields = {"r": link.recipient, "c": link.campaign, "m": link.message}
    if link.url is not None:
        fields["u"] = link.url
    at = int((now or datetime.now(UTC)).timestamp())
    token = _fernet(key).encrypt_at_time(orjson.dumps(fields), at)
    return token.decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class LinkKeys:
    """The keys links verify under (the current one first) and how long a link works."""

    keys: Sequence[bytes]
    ttl_s: int

    def read(self, token: str, now: datetime | None = None) -> tuple[EmailLink, datetime]:
        """The link a token stands for and when it was made; InvalidToken unless it is
        strictly encoded, made under one of the keys and not expired."""
        raw = _strict_b64(token)
        at = int((now or datetime.now(UTC)).timestamp())
        fernet = MultiFernet([_fernet(k) for k in self.keys if k])
        padded = base64.urlsafe_b64encode(raw)
        try:
            plain = fernet.decrypt_at_time(padded, self.ttl_s, at)
        except FernetInvalid:
            raise InvalidToken("the link token is expired, tampered or foreign") from None
        made = datetime.fromtimestamp(fernet.extract_timestamp(padded), UTC)
        return _link_of(plain), made


def _link_of(plain: bytes) -> EmailLink:
    fields = orjson.loads(plain)
    if not isinstance(fields, dict) or not all(
        isinstance(fields.get(k), str) for k in ("r", "c", "m")
    ):
        raise InvalidToken("the link token lacks recipient, campaign or message")
    url = fields.get("u")
    if url is not None:
        _check_target(url)
    return EmailLink(fields["r"], fields["c"], fields["m"], url)


_B64URL = re.compile(r"^[A-Za-z0-9_-]{16,4096}$")


def _strict_b64(token: str) -> bytes:
    """Decode unpadded base64url, refusing any other alphabet, padding or a non-canonical
    form (so exactly one string stands for each token)."""
    if not _B64URL.match(token) or len(token) % 4 == 1:
        raise InvalidToken("the link token is malformed")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidToken("the link token is malformed") from None
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
        raise InvalidToken("the link token is malformed")
    return raw


def _fernet(key: bytes) -> Fernet:
    """A Fernet key derived from a configured key of any length."""
    digest = hashlib.sha256(b"touchpath email link\0" + key).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


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
    """The ``Email Link Clicked`` touchpoint; an anonymous id ties the browser to the person
    (give one only for a human click soon after the send: :func:`may_tie_browser`)."""
    props = {"url": link.url, "link_scanner": scanner or None}
    return _email_event("Email Link Clicked", link, at, props, None if scanner else anonymous_id)


def may_tie_browser(scanner: bool, made: datetime, at: datetime, window_s: int) -> bool:
    """Whether a click may tie the clicking browser's anonymous id to the recipient: only a
    person's click (not a link scanner's) within ``window_s`` of the link being made — later,
    the email is more and more likely to have been forwarded to someone else."""
    return not scanner and (at - made).total_seconds() <= window_s


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
