"""Webhook signatures, pure functions: Standard Webhooks (sign and verify), plain HMACs.

Standard Webhooks (https://www.standardwebhooks.com): the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``, signed with HMAC-SHA256 under the secret
(``whsec_`` + base64 of the key bytes); ``webhook-signature`` holds one or more
space-separated ``v1,<base64>`` signatures (several during a key rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook's signature is missing, malformed, wrong or too old (answer 401)."""


def new_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + 32 random bytes in base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret; ValueError for anything else (a plain string
    would be read as raw bytes here but base64-decoded by Standard Webhooks libraries)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a secret must be whsec_ followed by base64")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if not key:
        raise ValueError("a whsec_ secret must not be empty")
    return key


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a ``whsec_`` secret's decoded bytes; a secret without the
    prefix (subscriptions stored before secrets had to be ``whsec_``) keeps its raw bytes."""
    return secret_bytes(secret) if secret.startswith(SECRET_PREFIX) else secret.encode()


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``) of a delivery."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a delivery."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, webhook_id, timestamp, body),
    }


def verify_standard(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a Standard Webhooks request; returns its ``webhook-id`` or raises SignatureError."""
    webhook_id = headers.get("webhook-id", "")
    timestamp = check_timestamp(headers.get("webhook-timestamp", ""), now, tolerance_s)
    signatures = headers.get("webhook-signature", "")
    if not webhook_id or not signatures:
        raise SignatureError("webhook-id and webhook-signature headers are required")
    expected = standard_signature(secret, webhook_id, timestamp, body)
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            return webhook_id
    raise SignatureError("no webhook-signature matches the body")


def check_timestamp(text: str, now: float, tolerance_s: int) -> int:
    """A signed Unix timestamp (seconds) within ``tolerance_s`` of now, or SignatureError."""
    try:
        timestamp = int(text.strip())
    except ValueError:
        raise SignatureError("the signature timestamp is missing or not a number") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"the signature timestamp is more than {tolerance_s} s away from now")
    return timestamp


def hmac_hex(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    """Hex HMAC of ``message`` (Mailgun, Intercom)."""
    return hmac.new(key, message, algorithm).hexdigest()


def hmac_base64(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    """Base64 HMAC of ``message`` (Zendesk)."""
    return base64.b64encode(hmac.new(key, message, algorithm).digest()).decode()


def same(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(expected.encode(), given.encode())
