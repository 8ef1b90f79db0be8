"""Secrets: constant-time look-up (write keys, API tokens) and masking for display."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: query parameters whose values are credentials (matched case-insensitively, as substrings)
SECRET_PARAMETERS = ("token", "key", "secret", "password", "passwd", "sig", "auth", "code")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*)(:[^/\s@]*)?@", re.I)

T = TypeVar("T")


def lookup_secret(candidate: str | None, secrets: Mapping[str, T]) -> T | None:
    """The value stored under ``candidate``, comparing against every key in constant time."""
    if not candidate:
        return None
    found: T | None = None
    given = candidate.encode()
    for secret, value in secrets.items():
        if hmac.compare_digest(given, secret.encode()):
            found = value
    return found


def mask_url(url: str) -> str:
    """``url`` without its credentials: the password of ``user:password@`` and the values of
    query parameters named like secrets (``?token=…``, ``api_key=…``) become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    query = urlencode(
        [(k, MASK if _is_secret(k) else v) for k, v in parse_qsl(parts.query, True)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Free text (an error message, say) with the credentials of any URL in it masked."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def _is_secret(name: str) -> bool:
    lower = name.lower()
    return any(word in lower for word in SECRET_PARAMETERS)
