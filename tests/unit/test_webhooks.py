"""Webhook subscriptions, matching, bodies and the retry plan (pure)."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchpath.destinations import parse_networks
from touchpath.webhooks import (
    RetryPolicy,
    Subscription,
    SubscriptionError,
    delivery_body,
    delivery_id,
    matches,
    new_subscription,
    webhook_id,
)

STAGES = ["awareness", "consideration", "decision", "purchase", "post-purchase"]
CHANGE = {
    "change_id": "c1",
    "to": "decision",
    "from": "consideration",
    "at_ms": 1_700_000_000_000,
    "kind": "advance",
    "customer_id": "k1",
}


def sub(stages: list[str] = [], transitions: list[str] = []) -> Subscription:  # noqa: B006
    return new_subscription("https://x.example/hook", stages, transitions, STAGES)


def test_filters() -> None:
    assert matches(sub(), CHANGE)  # no filter: everything
    assert matches(sub(stages=["decision"]), CHANGE)
    assert not matches(sub(stages=["purchase"]), CHANGE)
    assert matches(sub(transitions=["consideration->decision"]), CHANGE)
    assert matches(sub(transitions=["*->decision"]), CHANGE)
    assert matches(sub(transitions=["consideration->*"]), CHANGE)
    assert not matches(sub(transitions=["awareness->decision"]), CHANGE)
    first = {**CHANGE, "from": None}
    assert matches(sub(transitions=["*->decision"]), first)
    assert not matches(sub(transitions=["consideration->decision"]), first)


def test_stage_filters_match_the_stage_an_announcement_is_about() -> None:
    inserted = {**CHANGE, "stage": "decision", "change": "inserted", "kind": "correction"}
    assert matches(sub(stages=["decision"]), inserted)
    removed = {**CHANGE, "stage": "purchase", "change": "removed", "from": "purchase"}
    removed["to"] = "decision"
    assert matches(sub(stages=["purchase"]), removed)
    assert matches(sub(transitions=["purchase->*"]), removed)


@pytest.mark.parametrize(
    ("url", "stages", "transitions", "secret"),
    [
        ("ftp://x.example/", [], [], None),
        ("https:///path", [], [], None),
        ("https://x.example/", ["nope"], [], None),
        ("https://x.example/", [], ["decision"], None),
        ("https://x.example/", [], ["nope->decision"], None),
        ("https://x.example/", [], [], "whsec_%%%"),
        ("https://x.example/", [], [], "mysecret"),
        ("https://x.example/", [], [], "whsec_"),
        ("https://user:pass@x.example/", [], [], None),
        ("https://token@x.example/", [], [], None),
        ("http://[::1", [], [], None),
    ],
)
def test_invalid_subscriptions_say_why(
    url: str, stages: list[str], transitions: list[str], secret: str | None
) -> None:
    with pytest.raises(SubscriptionError) as caught:
        new_subscription(url, stages, transitions, STAGES, secret)
    assert str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://100.64.1.1/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://224.0.0.1/",
    ],
)
def test_internal_ip_literals_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(SubscriptionError, match="TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS"):
        new_subscription(url, [], [], STAGES)
    everything = parse_networks("0.0.0.0/0, ::/0")
    assert new_subscription(url, [], [], STAGES, allowed=everything).url == url


def test_plain_secrets_are_refused_with_the_reason_and_whsec_ones_kept() -> None:
    with pytest.raises(SubscriptionError, match="whsec_"):
        new_subscription("https://x.example/", [], [], STAGES, "mysecret")
    given_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert new_subscription("https://x.example/", [], [], STAGES, given_secret).secret == (
        given_secret
    )
    assert new_subscription("https://localhost/", [], [], STAGES).url  # names: at delivery


def test_round_trip_and_public_view_hides_the_secret() -> None:
    made = sub(stages=["purchase"], transitions=["*->decision"])
    assert Subscription.from_json(made.to_json()) == made
    assert made.secret.startswith("whsec_") and "secret" not in made.public()
    assert made.public()["transitions"] == ["*->decision"]


def test_delivery_identity_and_body() -> None:
    made = sub()
    assert delivery_id(CHANGE, made) == f"c1.{made.id}"
    assert webhook_id(CHANGE) == "msg_c1"
    body = orjson.loads(delivery_body(CHANGE))
    assert body["type"] == "stage.changed" and body["data"] == CHANGE
    assert body["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert (
        orjson.loads(delivery_body({**CHANGE, "kind": "correction"}))["type"] == "stage.corrected"
    )


@given(st.integers(min_value=0, max_value=2**32), st.floats(0.01, 5), st.floats(1, 600))
def test_backoff_is_jittered_exponential_and_bounded(seed: int, base: float, cap: float) -> None:
    policy = RetryPolicy(
        base_s=base, cap_s=cap, max_attempts=8, max_age_s=900, rng=random.Random(seed)
    )
    age, attempts = 0.0, 0
    while True:
        attempts += 1
        delay = policy.next_delay(attempts, age)
        if delay is None:
            break
        assert 0 <= delay <= min(cap, base * 2 ** (attempts - 1))
        age += delay
    assert attempts <= 8 and age <= 900
