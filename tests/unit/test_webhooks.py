"""Webhook subscriptions, matching, bodies and the retry plan (pure)."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("url", "stages", "transitions", "secret"),
    [
        ("ftp://x.example/", [], [], None),
        ("https:///path", [], [], None),
        ("https://x.example/", ["nope"], [], None),
        ("https://x.example/", [], ["decision"], None),
        ("https://x.example/", [], ["nope->decision"], None),
        ("https://x.example/", [], [], "whsec_%%%"),
    ],
)
def test_invalid_subscriptions_say_why(
    url: str, stages: list[str], transitions: list[str], secret: str | None
) -> None:
    with pytest.raises(SubscriptionError) as caught:
        new_subscription(url, stages, transitions, STAGES, secret)
    assert str(caught.value)


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
