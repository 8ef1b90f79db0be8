"""Email and chat channels end to end: signed requests → collector → Kafka → processor → API."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.embedded import Child
from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, read_topic, stack_env, start_service, wait_for
from touchpath.adapters import intercom, sendgrid, zendesk
from touchpath.email_links import click_url, pixel_url
from touchpath.signatures import hmac_base64, hmac_hex, new_secret, standard_headers

LINK_KEY = "e2e-link-key"
MAILGUN_KEY = "e2e-mailgun-key"
INTERCOM_SECRET = "e2e-intercom-secret"
ZENDESK_SECRET = "e2e-zendesk-secret"
CHAT_SECRET = new_secret()
SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


class Stack:
    def __init__(self, env: dict[str, str], children: list[Child]) -> None:
        self.env = env
        self.collector, _, self.api = (f"http://127.0.0.1:{c.port}" for c in children)
        self.http = httpx.Client(timeout=10, headers={"user-agent": BROWSER})

    def topic(self, count: int) -> list[dict[str, Any]]:
        bootstrap = self.env["TOUCHPATH_KAFKA_BOOTSTRAP"]
        return read_topic(bootstrap, self.env["TOUCHPATH_TOPIC_TOUCHPOINTS"], count)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for r in self.topic(1000) for e in r["events"] if e.get("event") == name]

    def customer(self, identifier: str, kind: str) -> dict[str, Any] | None:
        answer = self.http.get(
            f"{self.api}/v1/customers/{identifier}",
            params={"type": kind},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        )
        return answer.json() if answer.status_code == 200 else None

    def journey_size(self, identifier: str, kind: str) -> int:
        answer = self.http.get(
            f"{self.api}/v1/customers/{identifier}/journey",
            params={"type": kind},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        )
        return len(answer.json()["entries"]) if answer.status_code == 200 else 0


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[Stack]:
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_EMAIL_LINK_KEY=LINK_KEY,
        TOUCHPATH_SENDGRID_PUBLIC_KEY=SENDGRID_PUBLIC,
        TOUCHPATH_MAILGUN_SIGNING_KEY=MAILGUN_KEY,
        TOUCHPATH_INTERCOM_CLIENT_SECRET=INTERCOM_SECRET,
        TOUCHPATH_ZENDESK_SIGNING_SECRET=ZENDESK_SECRET,
        TOUCHPATH_CHAT_WEBHOOK_SECRET=CHAT_SECRET,
    )
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    try:
        yield Stack(env, children)
    finally:
        for child in children:
            child.stop()


def test_email_click_redirects_and_ties_the_browser_to_the_recipient(stack: Stack) -> None:
    link = click_url(
        stack.collector,
        LINK_KEY.encode(),
        recipient="Grace@Example.com",
        campaign="spring-sale",
        message="msg-1",
        url="https://shop.example/sale?item=7",
    )
    page = {"type": "page", "anonymousId": "browser-42", "properties": {"path": "/"}}
    assert stack.http.post(f"{stack.collector}/v1/page", json=page, auth=(WRITE_KEY, "")).is_success
    answer = stack.http.get(link, headers={"cookie": 'ajs_anonymous_id="browser-42"'})
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://shop.example/sale?item=7"
    customer = wait_for(lambda: _tied(stack))
    assert customer["stage"] == "consideration"  # Email Link Clicked
    clicked = stack.events("Email Link Clicked")[0]
    assert clicked["context"]["channel"] == "email"
    assert clicked["properties"]["campaign_id"] == "spring-sale"


def _tied(stack: Stack) -> dict[str, Any] | None:
    customer = stack.customer("browser-42", "anonymous_id")
    values = {i["value"] for i in customer["identities"]} if customer else set()
    return customer if "grace@example.com" in values else None


def test_tampered_or_unsigned_links_never_redirect(stack: Stack) -> None:
    link = click_url(
        stack.collector,
        LINK_KEY.encode(),
        recipient="a@b.co",
        campaign="c",
        message="m",
        url="https://shop.example/",
    )
    good = link.rpartition("/")[2]
    evil = base64.urlsafe_b64encode(b'{"r":"a@b.co","c":"c","m":"m","u":"https://evil.example/"}')
    flipped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    forged = evil.decode().rstrip("=")
    for token in (forged, f"{good}==", f"{good}.", good[:-4], flipped, "x"):
        answer = stack.http.get(f"{stack.collector}/v1/email/click/{token}")
        assert answer.status_code == 400, token
        assert "location" not in answer.headers
        assert answer.json()["detail"]
    foreign = click_url(
        stack.collector,
        b"not-our-key",
        recipient="a@b.co",
        campaign="c",
        message="m",
        url="https://evil.example/",
    )
    assert stack.http.get(foreign).status_code == 400


def test_open_pixel_answers_a_gif_and_flags_machine_opens(stack: Stack) -> None:
    pixel = pixel_url(stack.collector, LINK_KEY.encode(), "pixel@example.com", "news", "msg-9")
    answer = stack.http.get(pixel)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a")
    apple = stack.http.get(pixel, headers={"user-agent": "Mozilla/5.0", "x-forwarded-for": "x"})
    assert apple.status_code == 200
    opens = wait_for(
        lambda: (
            [
                e
                for e in stack.events("Email Opened")
                if e["properties"].get("email") == "pixel@example.com"
            ]
            or None
        )
    )
    assert opens[0]["properties"]["campaign_id"] == "news"
    customer = wait_for(lambda: stack.customer("pixel@example.com", "email"))
    assert customer["stage"] == "awareness"


def _sendgrid_headers(body: bytes, at: float) -> dict[str, str]:
    stamp = str(int(at))
    signature = SENDGRID_PRIVATE.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        sendgrid.SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        sendgrid.TIMESTAMP_HEADER: stamp,
        "content-type": "application/json",
    }


def _sendgrid_post(
    stack: Stack, events: list[dict[str, Any]], at: float, signed_body: bytes | None = None
) -> httpx.Response:
    body = orjson.dumps(events)
    headers = _sendgrid_headers(body if signed_body is None else signed_body, at)
    url = f"{stack.collector}/v1/webhooks/sendgrid/mail"
    return stack.http.post(url, content=body, headers=headers)


def test_sendgrid_webhook_verified_mapped_and_deduplicated(stack: Stack) -> None:
    now = time.time()
    delivered = {
        "email": "sg@example.com",
        "timestamp": int(now) - 60,
        "event": "delivered",
        "sg_event_id": "sg-1",
        "sg_message_id": "m-1",
        "userId": "sg-user",
    }
    machine = {**delivered, "event": "open", "sg_event_id": "sg-2", "sg_machine_open": True}
    answer = _sendgrid_post(stack, [delivered, machine], now)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    retried = _sendgrid_post(stack, [{**delivered, "sg_event_id": "sg-1-retried"}], now)
    assert retried.status_code == 200  # accepted, then de-duplicated by content
    assert _sendgrid_post(stack, [delivered], now - 3600).status_code == 401  # stale
    forged = [{**delivered, "email": "evil@example.com"}]
    assert _sendgrid_post(stack, forged, now, orjson.dumps([delivered])).status_code == 401
    last = {**delivered, "event": "click", "sg_event_id": "sg-3", "url": "https://x.example/"}
    assert _sendgrid_post(stack, [last], now).status_code == 200
    # the click came after the retry on the same partition: once it is in, the retry was seen
    wait_for(lambda: stack.journey_size("sg-user", "user_id") >= 3)
    assert stack.journey_size("sg-user", "user_id") == 3
    customer = stack.customer("sg-user", "user_id")
    assert customer is not None and customer["stage"] == "consideration"
    history = {h["stage"] for h in customer["stage_history"]}
    assert history == {"awareness", "consideration"}


def test_mailgun_webhook_rejects_replays_and_bad_signatures(stack: Stack) -> None:
    stamp = str(int(time.time()))
    token = f"tok-{time.time_ns()}"
    body = {
        "signature": {
            "timestamp": stamp,
            "token": token,
            "signature": hmac_hex(MAILGUN_KEY.encode(), (stamp + token).encode()),
        },
        "event-data": {
            "event": "clicked",
            "id": "mg-ev-1",
            "timestamp": time.time(),
            "recipient": "mg@example.com",
            "url": "https://shop.example/",
            "user-variables": {"userId": "mg-user"},
        },
    }
    url = f"{stack.collector}/v1/webhooks/mailgun/mail"
    first = stack.http.post(url, json=body)
    assert first.status_code == 200 and first.json()["accepted"] == 1
    assert stack.http.post(url, json=body).status_code == 401  # replayed token
    bad = {**body, "signature": {**body["signature"], "token": "other", "signature": "00"}}
    assert stack.http.post(url, json=bad).status_code == 401
    customer = wait_for(lambda: stack.customer("mg-user", "user_id"))
    assert customer["stage"] == "consideration"


def test_chat_webhooks_intercom_zendesk_and_standard(stack: Stack) -> None:
    now = time.time()
    conversation = {
        "type": "notification_event",
        "id": f"notif-{time.time_ns()}",
        "topic": "conversation.user.created",
        "created_at": int(now),
        "data": {
            "item": {
                "type": "conversation",
                "id": "c-1",
                "contacts": {"contacts": [{"id": "ic-1", "external_id": "chat-user"}]},
                "source": {"author": {"type": "user", "email": "chat@example.com"}},
            }
        },
    }
    body = orjson.dumps(conversation)
    signed = {intercom.SIGNATURE_HEADER: "sha1=" + hmac_hex(INTERCOM_SECRET.encode(), body, "sha1")}
    url = f"{stack.collector}/v1/webhooks/intercom/support"
    assert stack.http.post(url, content=body, headers=signed).status_code == 200
    assert stack.http.post(url, content=body + b" ", headers=signed).status_code == 401

    ticket = orjson.dumps(
        {
            "type": "zen:event-type:ticket.comment_added",
            "id": f"zd-{time.time_ns()}",
            "time": datetime.now(UTC).isoformat(),
            "detail": {"id": "t-1", "requester_id": "zd-1"},
            "event": {"comment": {"author": {"is_staff": False}}},
        }
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    zd_headers = {
        zendesk.TIMESTAMP_HEADER: stamp,
        zendesk.SIGNATURE_HEADER: hmac_base64(ZENDESK_SECRET.encode(), stamp.encode() + ticket),
    }
    zd_url = f"{stack.collector}/v1/webhooks/zendesk/helpdesk"
    assert stack.http.post(zd_url, content=ticket, headers=zd_headers).status_code == 200
    old = "2020-01-01T00:00:00Z"
    stale = {
        zendesk.TIMESTAMP_HEADER: old,
        zendesk.SIGNATURE_HEADER: hmac_base64(ZENDESK_SECRET.encode(), old.encode() + ticket),
    }
    assert stack.http.post(zd_url, content=ticket, headers=stale).status_code == 401

    rating = orjson.dumps(
        {
            "type": "satisfaction.rated",
            "customer": {"id": "v-9", "email": "chat@example.com"},
            "conversation_id": "c-1",
            "rating": 2,
        }
    )
    std = standard_headers(CHAT_SECRET, f"msg-{time.time_ns()}", int(now), rating)
    chat_url = f"{stack.collector}/v1/webhooks/chat/crisp"
    assert stack.http.post(chat_url, content=rating, headers=std).status_code == 200
    wrong = {**std, "webhook-signature": "v1,AAAA"}
    assert stack.http.post(chat_url, content=rating, headers=wrong).status_code == 401

    customer = wait_for(lambda: _with(stack, "chat-user", "ext:crisp_user:v-9"))
    assert customer["stage"] == "consideration"  # Live Chat Conversation Started
    assert stack.customer("zd-1", "zendesk_user") is not None


def test_signed_callbacks_are_refused_when_replayed_to_any_collector(
    stack: Stack, run_dir: Path
) -> None:
    """One replay cache in Redis: a request replayed to another collector process is refused;
    an Intercom notification older than the tolerance is refused (its created_at is signed)."""
    other = start_service("collector", stack.env, run_dir)
    try:
        now = int(time.time())
        notification = {
            "type": "notification_event",
            "id": f"notif-replay-{time.time_ns()}",
            "topic": "conversation.user.replied",
            "created_at": now,
            "data": {"item": {"id": "c-9", "contacts": {"contacts": [{"id": "ic-9"}]}}},
        }

        def intercom_post(base: str, payload: dict[str, Any]) -> int:
            body = orjson.dumps(payload)
            mac = hmac_hex(INTERCOM_SECRET.encode(), body, "sha1")
            headers = {intercom.SIGNATURE_HEADER: "sha1=" + mac}
            url = f"{base}/v1/webhooks/intercom/support"
            return stack.http.post(url, content=body, headers=headers).status_code

        second = f"http://127.0.0.1:{other.port}"
        assert intercom_post(stack.collector, notification) == 200
        assert intercom_post(second, notification) == 401  # replayed to another process
        assert intercom_post(stack.collector, notification) == 401
        stale = {**notification, "id": "notif-stale", "created_at": now - 3600}
        assert intercom_post(second, stale) == 401
        rating = orjson.dumps(
            {"type": "conversation.closed", "customer": {"id": "v-7"}, "conversation_id": "c-7"}
        )
        std = standard_headers(CHAT_SECRET, f"msg-replay-{time.time_ns()}", now, rating)
        chat = "/v1/webhooks/chat/crisp"
        assert stack.http.post(stack.collector + chat, content=rating, headers=std).is_success
        assert stack.http.post(second + chat, content=rating, headers=std).status_code == 401
    finally:
        other.stop()


def _with(stack: Stack, user_id: str, identity: str) -> dict[str, Any] | None:
    customer = stack.customer(user_id, "user_id")
    if not customer:
        return None
    keys = {f"{i['type']}:{i['value']}" for i in customer["identities"]}
    return customer if any(identity.endswith(k.split(":", 1)[-1]) for k in keys) else None


def test_satisfaction_reports_nps_and_csat_per_stage(stack: Stack) -> None:
    answers = [
        {
            "type": "track",
            "userId": f"nps-{i}",
            "event": "NPS Survey Answered",
            "properties": {"score": score},
        }
        for i, score in enumerate([10, 9, 8, 3])
    ] + [
        {
            "type": "track",
            "userId": "nps-0",
            "event": "CSAT Survey Answered",
            "properties": {"score": 4},
        }
    ]
    bad = {
        "type": "track",
        "userId": "nps-9",
        "event": "NPS Survey Answered",
        "properties": {"score": 11},
    }
    answer = stack.http.post(
        f"{stack.collector}/v1/batch", json={"batch": [*answers, bad]}, auth=(WRITE_KEY, "")
    )
    assert answer.status_code == 200
    assert answer.json()["rejected"][0]["code"] == "bad_survey_score"

    def report() -> dict[str, Any] | None:
        got = stack.http.get(
            f"{stack.api}/v1/satisfaction", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        ).json()
        return got if got["nps_answers"] >= 4 and got["csat_answers"] >= 1 else None

    got = wait_for(report)
    # only this test sends NPS answers (the chat test may add a CSAT rating of 2)
    assert got["nps"] == 25.0 and got["promoters"] == 2 and got["detractors"] == 1
    assert got["csat"] in (4.0, 3.0)
    by_stage = {s["stage"]: s for s in got["stages"]}
    assert by_stage["(none)"]["nps_answers"] == 4  # no purchase yet: the answers gave no stage
