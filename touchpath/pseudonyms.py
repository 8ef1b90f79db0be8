"""Optional keyed hashing of emails and phone numbers before anything is stored (pure).

With a key configured (``TOUCHPATH_IDENTIFIER_HASH_KEY``) the collector replaces every email
and phone value an event carries (traits, context traits, ``properties.email``, typed
external ids) with ``hmac-<32 hex>``: HMAC-SHA256 of the *normalised* value under the key.
Equal addresses hash alike, so stitching still works; the API hashes the clear value a caller
asks for the same way, so look-ups by email or phone still work. Without the key nobody can
reverse the stored values, and a dictionary attack needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

PREFIX = "hmac-"
_PSEUDONYM = re.compile(r"^hmac-[0-9a-f]{32}$")
_FIELDS = ("email", "phone")


def is_pseudonym(value: object) -> bool:
    """True for a value this module produced."""
    return isinstance(value, str) and bool(_PSEUDONYM.match(value))


def pseudonym(key: bytes, kind: str, normalized: str) -> str:
    """The keyed hash of a normalised email or phone (``kind`` separates the two)."""
    digest = hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:32]


Normalizer = Callable[[object], "str | None"]


def pseudonymize_event(
    event: dict[str, Any], key: bytes, normalizers: Mapping[str, Normalizer]
) -> None:
    """Replace, in place, every email and phone value of a normalised event by its pseudonym."""
    for holder in _holders(event):
        for kind in _FIELDS:
            if kind in holder and holder[kind] is not None:
                holder[kind] = _hashed(key, kind, holder[kind], normalizers[kind])
    context = event.get("context")
    if not isinstance(context, dict):
        return
    external = context.get("externalIds")
    if isinstance(external, list):
        context["externalIds"] = [_external(item, key, normalizers) for item in external]


def _holders(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name in ("traits", "properties"):
        if isinstance(event.get(name), dict):
            event[name] = dict(event[name])
            found.append(event[name])
    context = event.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        context["traits"] = dict(context["traits"])
        found.append(context["traits"])
    return found


def _external(item: object, key: bytes, normalizers: Mapping[str, Normalizer]) -> object:
    if not isinstance(item, dict):
        return item
    kind = str(item.get("type", "")).strip().lower()
    if kind not in _FIELDS or item.get("id") is None:
        return item
    return {**item, "id": _hashed(key, kind, item["id"], normalizers[kind])}


def _hashed(key: bytes, kind: str, value: object, normalize: Normalizer) -> str:
    if is_pseudonym(value):
        return str(value)
    normalized = normalize(value) or str(value).strip().lower()
    return pseudonym(key, kind, normalized)
