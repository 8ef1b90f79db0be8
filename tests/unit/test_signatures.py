"""Standard Webhooks signatures: touchpath and the `standardwebhooks` library agree both ways."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from touchpath.signatures import (
    SignatureError,
    new_secret,
    secret_bytes,
    signing_key,
    standard_headers,
    verify_standard,
)

BODY = b'{"type":"stage.changed","data":{"to":"purchase"}}'


def test_touchpath_deliveries_verify_with_the_standardwebhooks_library() -> None:
    secret = new_secret()
    headers = standard_headers(secret, "msg_c1", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "stage.changed",
        "data": {"to": "purchase"},
    }


def test_the_librarys_signatures_verify_with_touchpaths_verifier() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": f"v1,bogus {signature}",  # a rotated-out key next to the right one
    }
    assert verify_standard(secret, headers, BODY, time.time()) == "msg_1"
    with pytest.raises(SignatureError):
        verify_standard(new_secret(), headers, BODY, time.time())


def test_unpadded_secrets_decode_like_the_library() -> None:
    secret = "whsec_" + new_secret().removeprefix("whsec_").rstrip("=")
    assert secret_bytes(secret) == Webhook(secret)._whsecret
    headers = standard_headers(secret, "msg_2", int(time.time()), BODY)
    Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize("secret", ["mysecret", "whsec_", "whsec_%%%", ""])
def test_secrets_must_be_whsec_base64(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        secret_bytes(secret)


def test_legacy_plain_secrets_still_sign_with_their_raw_bytes() -> None:
    """Subscriptions stored before secrets had to be whsec_ keep working for their receivers."""
    assert signing_key("mysecret") == b"mysecret"
    headers = standard_headers("mysecret", "msg_3", int(time.time()), BODY)
    assert verify_standard("mysecret", headers, BODY, time.time()) == "msg_3"
