"""Issue #14 end to end: what a browser key cannot do to someone else's identity, phones in
any format, and former customer ids, through the live collector, processor and API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    BROWSER_KEY,
    READ_TOKEN,
    SERVER_KEY,
    stack_env,
    start_service,
    wait_for,
)

READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_PHONE_REGION="GB")
    children = [start_service(name, env, run_dir) for name in ("collector", "processor", "api")]
    yield {c.name: f"http://127.0.0.1:{c.port}" for c in children}
    for child in children:
        child.stop()


def send(stack: dict[str, str], key: str, *events: dict[str, Any]) -> None:
    answer = httpx.post(f"{stack['collector']}/v1/batch", json={"batch": events}, auth=(key, ""))
    assert answer.status_code == 200 and not answer.json().get("rejected"), answer.text


def profile(stack: dict[str, str], value: str, kind: str = "user_id") -> dict[str, Any] | None:
    answer = httpx.get(f"{stack['api']}/v1/customers/{value}", params={"type": kind}, headers=READ)
    return answer.json() if answer.is_success else None


def test_a_browser_key_cannot_rename_forge_or_steal(stack: dict[str, str]) -> None:
    """Issue #14, 5 (a) and (b), with the public key against a server-known victim."""
    send(
        stack,
        SERVER_KEY,
        {"type": "identify", "userId": "victim", "traits": {"name": "Ada", "email": "v@x.io"}},
    )
    victim = wait_for(lambda: profile(stack, "victim"))
    send(
        stack,
        BROWSER_KEY,
        {
            "type": "identify",
            "userId": "victim",
            "anonymousId": "attacker-anon",
            "traits": {"name": "PWNED"},
            "timestamp": "2999-01-01T00:00:00Z",
            "context": {"channel": "server"},
        },
        {
            "type": "identify",
            "userId": "attacker",
            "traits": {"email": "v@x.io"},
            "timestamp": "1971-01-01T00:00:00Z",
        },
    )
    wait_for(lambda: profile(stack, "attacker"))
    after = wait_for(lambda: profile(stack, "victim"))
    assert after["traits"]["name"] == "Ada"  # a server key's trait stays
    assert after["customer_id"] == victim["customer_id"]  # the backdated event moved nothing
    assert after["channels"].get("server") == 1  # the victim's own server call, no claim
    assert profile(stack, "v@x.io", "email")["customer_id"] == victim["customer_id"]


def test_a_phone_in_any_format_finds_the_customer(stack: dict[str, str]) -> None:
    send(
        stack,
        SERVER_KEY,
        {"type": "identify", "userId": "uk", "traits": {"phone": "020 7946 0123"}},
    )
    wait_for(lambda: profile(stack, "uk"))
    for spelling in ("+44 20 7946 0123", "0044 20 7946 0123", "020-7946-0123"):
        found = profile(stack, spelling, "phone")
        assert found is not None and found["customer_id"] == profile(stack, "uk")["customer_id"]


def test_a_former_customer_id_answers_with_the_customer_it_became(stack: dict[str, str]) -> None:
    send(stack, SERVER_KEY, {"type": "page", "anonymousId": "visitor-9"})
    anonymous = wait_for(lambda: profile(stack, "visitor-9", "anonymous_id"))
    send(stack, SERVER_KEY, {"type": "identify", "userId": "u-9", "anonymousId": "visitor-9"})
    identified = wait_for(lambda: profile(stack, "u-9"))
    assert identified["customer_id"] != anonymous["customer_id"]  # a user id leads now
    former = wait_for(lambda: profile(stack, anonymous["customer_id"], "customer_id"))
    assert former["customer_id"] == identified["customer_id"]
    assert former["merged_from"] == [anonymous["customer_id"]]


def test_an_admin_splits_a_wrong_merge_and_it_stays_split(stack: dict[str, str]) -> None:
    wrong = {"type": "identify", "userId": "sam", "anonymousId": "sam-phone"}
    shared = {"type": "identify", "userId": "sam", "traits": {"email": "family@x.io"}}
    send(stack, SERVER_KEY, {**wrong, "messageId": "w1"}, {**shared, "messageId": "w2"})
    merged = wait_for(lambda: profile(stack, "family@x.io", "email"))
    assert merged["customer_id"] == wait_for(lambda: profile(stack, "sam"))["customer_id"]
    answer = httpx.post(
        f"{stack['api']}/v1/customers/family@x.io/split",
        params={"type": "email"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert answer.status_code == 200, answer.text
    split = answer.json()
    assert split["split_from"] == merged["customer_id"] and split["split_by"]
    sam = profile(stack, "sam")
    assert sam is not None and "family@x.io" not in str(sam["identities"])
    assert {"type": "anonymous_id", "value": "sam-phone"} in sam["identities"]
    assert any("split off" in tie["reason"] for tie in sam["refused_ties"])
    assert profile(stack, "family@x.io", "email")["customer_id"] == split["customer_id"]
    # a replay and a new event naming both do not merge them again
    send(stack, SERVER_KEY, {**shared, "messageId": "w2"}, {**shared, "messageId": "w3"})
    wait_for(lambda: (profile(stack, "sam") or {}).get("counts", {}).get("events") == 3)
    assert (
        profile(stack, "family@x.io", "email")["customer_id"]
        != profile(stack, "sam")["customer_id"]
    )


def test_a_split_needs_the_admin_scope(stack: dict[str, str]) -> None:
    answer = httpx.post(f"{stack['api']}/v1/customers/sam/split", headers=READ)
    assert answer.status_code == 403
