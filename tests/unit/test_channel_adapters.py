"""Channel adapters with real signatures made in the test (keys generated here)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from touchpath.adapters import chat, intercom, mailgun, sendgrid, zendesk
from touchpath.adapters.common import PayloadError
from touchpath.effects import effects_of
from touchpath.email_links import (
    EmailLink,
    InvalidToken,
    LinkKeys,
    anonymous_id_from_cookie,
    click_event,
    is_link_scanner,
    is_machine_open,
    may_tie_browser,
    sign_token,
)
from touchpath.events import IngestContext, normalize_event
from touchpath.identifiers import identifiers_of
from touchpath.signatures import (
    SignatureError,
    hmac_base64,
    hmac_hex,
    new_secret,
    standard_headers,
    verify_standard,
)
from touchpath.stages import load_stage_model

NOW = time.time()
KEY = b"link-key-for-tests"
CTX = IngestContext(source="t", default_channel="web", received_at=datetime.now(UTC))
DAY_S = 86_400


def read_token(key: bytes, token: str, now: datetime | None = None) -> EmailLink:
    return LinkKeys([key], 90 * DAY_S).read(token, now)[0]


def _ids(event: dict[str, Any]) -> set[str]:
    return {i.key() for i in identifiers_of(normalize_event(event, CTX))}


# --- email links ------------------------------------------------------------------------------


def test_link_token_round_trip() -> None:
    link = EmailLink("ada@example.com", "spring", "m-1", "https://shop.example/sale?x=1")
    assert read_token(KEY, sign_token(KEY, link)) == link


@given(st.integers(min_value=0, max_value=400), st.sampled_from("AZaz09-_.="))
def test_any_changed_character_is_refused(position: int, replacement: str) -> None:
    token = sign_token(KEY, EmailLink("ada@example.com", "c", "m", "https://ok.example/"))
    index = position % len(token)
    tampered = token[:index] + replacement + token[index + 1 :]
    if tampered != token:
        with pytest.raises(InvalidToken):
            read_token(KEY, tampered)


@pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "e30.e30", "%%%.%%%"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(KEY, token)


def test_tokens_are_strict_opaque_and_expire() -> None:
    made = datetime(2026, 3, 1, tzinfo=UTC)
    token = sign_token(KEY, EmailLink("ada@example.com", "c", "m", "https://ok.example/"), made)
    assert read_token(KEY, token, made).recipient == "ada@example.com"
    for suffix in ("==", "=", "A", ".", "%3D%3D"):
        with pytest.raises(InvalidToken):
            read_token(KEY, token + suffix, made)
    readable = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ada" not in readable and b"example" not in readable  # no address in the URL
    keys = LinkKeys([KEY], 30 * DAY_S)
    assert keys.read(token, made.replace(day=30))[1] == made
    with pytest.raises(InvalidToken):
        keys.read(token, made.replace(month=4, day=2))  # 32 days later: expired


def test_rotated_keys_keep_sent_links_working() -> None:
    old = sign_token(b"old-key", EmailLink("a@b.co", "c", "m"))
    new = sign_token(b"new-key", EmailLink("a@b.co", "c", "m"))
    rotated = LinkKeys([b"new-key", b"old-key"], DAY_S)
    assert rotated.read(old)[0] == rotated.read(new)[0] == EmailLink("a@b.co", "c", "m")
    with pytest.raises(InvalidToken):
        LinkKeys([b"new-key"], DAY_S).read(old)  # once the old key is dropped


def test_only_a_prompt_human_click_ties_the_browser() -> None:
    sent = datetime(2026, 3, 1, tzinfo=UTC)
    soon, late = sent.replace(day=2), sent.replace(day=9)
    assert may_tie_browser(False, sent, soon, 2 * DAY_S)
    assert not may_tie_browser(False, sent, late, 2 * DAY_S)  # perhaps forwarded by now
    assert not may_tie_browser(True, sent, soon, 2 * DAY_S)  # a link scanner


def test_foreign_key_and_unsafe_targets_are_refused() -> None:
    token = sign_token(b"other", EmailLink("a@b.co", "c", "m", "https://ok.example/"))
    with pytest.raises(InvalidToken):
        read_token(KEY, token)
    for url in ("javascript:alert(1)", "//evil.example", "ftp://x.example/", "https:///"):
        with pytest.raises(InvalidToken):
            sign_token(KEY, EmailLink("a@b.co", "c", "m", url))


def test_click_with_cookie_ties_browser_to_recipient_and_scanners_do_not() -> None:
    link = EmailLink("Ada@Example.com", "spring", "m-1", "https://shop.example/")
    at = datetime.now(UTC)
    person = click_event(link, at, scanner=False, anonymous_id="anon-7")
    assert _ids(person) == {"email:ada@example.com", "anonymous_id:anon-7"}
    scanner = click_event(link, at, scanner=True, anonymous_id="anon-7")
    assert _ids(scanner) == {"email:ada@example.com"}
    model = load_stage_model(None)
    assert effects_of(normalize_event(person, CTX), model).stages  # moves the stage
    assert not effects_of(normalize_event(scanner, CTX), model).stages  # flagged: ignored


def test_machine_open_and_scanner_heuristics() -> None:
    assert is_machine_open("Mozilla/5.0", "17.58.1.2")
    assert not is_machine_open("Mozilla/5.0", "203.0.113.9")
    assert not is_machine_open("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15", "17.58.1.2")
    assert is_link_scanner("Mozilla/5.0 (compatible; Barracuda)", "GET")
    assert is_link_scanner("Mozilla/5.0 (X11) Firefox/120", "HEAD")
    assert not is_link_scanner("Mozilla/5.0 (X11) Firefox/120", "GET")
    assert anonymous_id_from_cookie("%22abc-1%22") == "abc-1"
    assert anonymous_id_from_cookie("undefined") is None


# --- SendGrid ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, at: float) -> dict[str, str]:
    stamp = str(int(at))
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        sendgrid.SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        sendgrid.TIMESTAMP_HEADER: stamp,
    }


def test_sendgrid_signature(sendgrid_keys: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public = sendgrid_keys
    key = sendgrid.load_public_key(public)
    body = b'[{"event":"open","email":"a@b.co","timestamp":1}]'
    sendgrid.verify(key, sendgrid_headers(private, body, NOW), body, NOW, 300)
    with pytest.raises(SignatureError):
        sendgrid.verify(key, sendgrid_headers(private, body, NOW), body + b" ", NOW, 300)
    with pytest.raises(SignatureError, match="away from now"):
        sendgrid.verify(key, sendgrid_headers(private, body, NOW - 3600), body, NOW, 300)
    with pytest.raises(SignatureError):
        sendgrid.verify(key, {}, body, NOW, 300)


def test_sendgrid_mapping_and_duplicates() -> None:
    base = {"email": "Ada@Example.com", "timestamp": 1700000000, "sg_message_id": "sgm-1"}
    events = [
        {**base, "event": "delivered", "sg_event_id": "e1", "userId": "u-9"},
        {**base, "event": "open", "sg_event_id": "e2", "sg_machine_open": True},
        {**base, "event": "click", "sg_event_id": "e3", "url": "https://x.example/"},
        {**base, "event": "click", "sg_event_id": "e3", "url": "https://x.example/"},
        {**base, "event": "deferred", "sg_event_id": "e4"},
        {"event": "open", "timestamp": 1700000000},
    ]
    result = sendgrid.translate(events)
    names = [e["event"] for e in result.events]
    assert names == ["Email Delivered", "Email Opened", "Email Link Clicked"]
    assert [s["index"] for s in result.skipped] == [3, 4, 5]
    assert result.events[0]["userId"] == "u-9"
    assert result.events[1]["properties"]["machine_open"] is True
    assert result.events[2]["properties"]["url"] == "https://x.example/"
    retried = sendgrid.translate([{**events[0], "sg_event_id": "changed-on-retry"}]).events[0]
    assert retried["messageId"] == result.events[0]["messageId"]
    with pytest.raises(PayloadError):
        sendgrid.translate({"not": "a list"})


# --- Mailgun ----------------------------------------------------------------------------------


def mailgun_body(key: bytes, event_data: dict[str, Any], at: float, token: str = "tok-1") -> dict:
    stamp = str(int(at))
    signature = hmac_hex(key, (stamp + token).encode())
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def test_mailgun_signature_and_mapping() -> None:
    key = b"mg-key"
    data = {
        "event": "opened",
        "id": "ev-1",
        "timestamp": 1700000000.5,
        "recipient": "ada@example.com",
        "user-variables": {"userId": "u-1"},
        "client-info": {"bot": "apple"},
    }
    body = mailgun_body(key, data, NOW)
    assert mailgun.verify(key, body, NOW, 300) == "tok-1"
    forged = {**body, "signature": {**body["signature"], "token": "tok-2"}}
    with pytest.raises(SignatureError):
        mailgun.verify(key, forged, NOW, 300)
    with pytest.raises(SignatureError):
        mailgun.verify(key, mailgun_body(key, data, NOW - 900), NOW, 300)
    (event,) = mailgun.translate(body).events
    assert event["event"] == "Email Opened" and event["userId"] == "u-1"
    assert event["properties"]["machine_open"] is True
    assert _ids(event) == {"user_id:u-1", "email:ada@example.com"}


# --- chat: Intercom, Zendesk, Standard Webhooks --------------------------------------------


def test_intercom_signature_and_mapping() -> None:
    secret = b"ic-secret"
    payload = {
        "type": "notification_event",
        "id": "notif_1",
        "topic": "conversation.user.created",
        "created_at": 1700000000,
        "data": {
            "item": {
                "type": "conversation",
                "id": "conv-9",
                "contacts": {"contacts": [{"id": "ic-77", "external_id": "u-5"}]},
                "source": {"author": {"type": "user", "email": "ada@example.com"}},
            }
        },
    }
    body = orjson.dumps(payload)
    intercom.verify(
        secret, {intercom.SIGNATURE_HEADER: "sha1=" + hmac_hex(secret, body, "sha1")}, body
    )
    with pytest.raises(SignatureError):
        intercom.verify(secret, {intercom.SIGNATURE_HEADER: "sha1=" + "0" * 40}, body)
    (event,) = intercom.translate(payload).events
    assert event["event"] == chat.STARTED and event["context"]["channel"] == "chat"
    assert _ids(event) == {"user_id:u-5", "email:ada@example.com", "ext:intercom_user:ic-77"}
    rated = {**payload, "topic": "conversation.rating.added"}
    rated["data"]["item"]["conversation_rating"] = {"rating": 4}
    (csat,) = intercom.translate(rated).events
    assert csat["event"] == "CSAT Survey Answered" and csat["properties"]["score"] == 4


def test_zendesk_signature_and_mapping() -> None:
    secret = b"zd-secret"
    body = b'{"a": 1}'
    stamp = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        zendesk.SIGNATURE_HEADER: hmac_base64(secret, stamp.encode() + body),
        zendesk.TIMESTAMP_HEADER: stamp,
    }
    zendesk.verify(secret, headers, body, NOW, 300)
    with pytest.raises(SignatureError):
        zendesk.verify(secret, headers, body + b"x", NOW, 300)
    with pytest.raises(SignatureError, match="away from now"):
        zendesk.verify(secret, headers, body, NOW + 3600, 300)
    comment = {
        "type": "zen:event-type:ticket.comment_added",
        "id": "zev-1",
        "time": "2026-11-24T10:00:00Z",
        "detail": {"id": "35", "requester_id": "9001"},
        "event": {"comment": {"author": {"is_staff": True}}},
    }
    (event,) = zendesk.translate(comment).events
    assert event["event"] == chat.AGENT_MESSAGE
    assert _ids(event) == {"ext:zendesk_user:9001"}
    solved = {
        **comment,
        "type": "zen:event-type:ticket.status_changed",
        "event": {"current": "SOLVED"},
    }
    assert zendesk.translate(solved).events[0]["event"] == chat.CLOSED


def test_standard_webhooks_chat() -> None:
    secret = new_secret()
    body = orjson.dumps(
        {
            "events": [
                {"type": "conversation.started", "customer": {"id": "v-1"}},
                {"type": "satisfaction.rated", "customer": {"id": "v-1"}, "rating": 5},
                {"type": "unknown", "customer": {"id": "v-1"}},
                {"type": "message.agent", "customer": {}},
            ]
        }
    )
    headers = standard_headers(secret, "msg_1", int(NOW), body)
    assert verify_standard(secret, headers, body, NOW) == "msg_1"
    with pytest.raises(SignatureError):
        verify_standard(new_secret(), headers, body, NOW)
    with pytest.raises(SignatureError):
        verify_standard(secret, headers, body, NOW + 1000)
    result = chat.translate(orjson.loads(body), "crisp", "msg_1", datetime.now(UTC))
    assert [e["event"] for e in result.events] == [chat.STARTED, "CSAT Survey Answered"]
    assert [s["index"] for s in result.skipped] == [2, 3]
    assert _ids(result.events[0]) == {"ext:crisp_user:v-1"}
    again = chat.translate(orjson.loads(body), "crisp", "msg_1", datetime.now(UTC))
    assert again.events[0]["messageId"] == result.events[0]["messageId"]  # a retry de-duplicates
