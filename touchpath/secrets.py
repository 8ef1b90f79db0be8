"""Constant-time secret look-up, for write keys and API tokens."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TypeVar

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
