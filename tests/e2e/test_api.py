"""The API end to end: events in through the collector, answers out of the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.e2e.conftest import (
    ADMIN_TOKEN,
    READ_TOKEN,
    WRITE_KEY,
    stack_env,
    start_service,
    wait_for,
)

READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = "2026-02-0{}T10:00:00.000Z"


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, Any]]:
    env = stack_env(bootstrap, redis_url)
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    urls = {c.name: f"http://127.0.0.1:{c.port}" for c in children}
    yield {"env": env, **urls}
    for child in children:
        child.stop()


def post(stack: dict[str, Any], events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{stack['collector']}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, "")
    )
    assert response.status_code == 200, response.text


def get(
    stack: dict[str, Any], path: str, headers: dict[str, str] = READ, **params: Any
) -> httpx.Response:
    return httpx.get(f"{stack['api']}{path}", headers=headers, params=params)


@pytest.fixture(scope="module")
def population(stack: dict[str, Any]) -> dict[str, Any]:
    post(
        stack,
        [
            {
                "type": "page",
                "anonymousId": "anon-ada-1",
                "messageId": "a1",
                "timestamp": DAY.format(1),
                "properties": {"path": "/"},
                "context": {"campaign": {"name": "spring"}},
            },
            {
                "type": "track",
                "anonymousId": "anon-ada-1",
                "event": "Product Viewed",
                "messageId": "a2",
                "timestamp": DAY.format(2),
            },
            {
                "type": "identify",
                "anonymousId": "anon-ada-1",
                "userId": "ada",
                "messageId": "a3",
                "timestamp": DAY.format(3),
                "traits": {"email": "Ada@Example.com", "plan": "pro"},
            },
            {
                "type": "track",
                "userId": "ada",
                "event": "Order Completed",
                "messageId": "a4",
                "timestamp": DAY.format(4),
                "properties": {"revenue": 120.5},
            },
            {
                "type": "page",
                "userId": "bob",
                "messageId": "b1",
                "timestamp": DAY.format(1),
                "context": {"channel": "email"},
            },
            {
                "type": "track",
                "userId": "bob",
                "event": "Checkout Started",
                "messageId": "b2",
                "timestamp": DAY.format(5),
            },
            {
                "type": "identify",
                "userId": "bob",
                "messageId": "b3",
                "timestamp": DAY.format(5),
                "traits": {"plan": "free"},
            },
        ],
    )
    wait_for(
        lambda: (
            get(stack, "/v1/customers/bob/stage").status_code == 200
            and get(stack, "/v1/customers/ada/stage").json().get("stage") == "purchase"
        )
    )
    wait_for(lambda: get(stack, "/v1/customers/bob").json()["traits"].get("plan") == "free")
    return {}


def test_stage_by_any_identifier(stack: dict[str, Any], population: dict[str, Any]) -> None:
    answers = [
        get(stack, "/v1/customers/ada/stage").json(),
        get(stack, "/v1/customers/anon-ada-1/stage", type="anonymous_id").json(),
        get(stack, "/v1/customers/ADA@example.com/stage", type="email").json(),
    ]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["stage"] == "purchase"
    assert answers[0]["previous_stage"] == "consideration"
    assert answers[0]["caused_by"]["message_id"] == "a4"
    assert answers[0]["entered_at"].startswith("2026-02-04T10:00:00")


def test_stage_as_of_a_past_time(stack: dict[str, Any], population: dict[str, Any]) -> None:
    past = get(stack, "/v1/customers/ada/stage", as_of="2026-02-02T12:00:00Z").json()
    assert past["stage"] == "consideration" and past["previous_stage"] == "awareness"
    before = get(stack, "/v1/customers/ada/stage", as_of="2026-01-01T00:00:00Z").json()
    assert before["stage"] is None


def test_unknown_customer_is_a_404_problem(stack: dict[str, Any]) -> None:
    response = get(stack, "/v1/customers/nobody/stage")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_profile(stack: dict[str, Any], population: dict[str, Any]) -> None:
    profile = get(stack, "/v1/customers/ada").json()
    assert {"type": "email", "value": "ada@example.com"} in profile["identities"]
    assert profile["traits"]["plan"] == "pro"
    assert [h["stage"] for h in profile["stage_history"]] == [
        "awareness",
        "consideration",
        "purchase",
    ]
    assert profile["counts"]["events"] == 4 and profile["orders"] == 1
    assert profile["revenue"] == 120.5
    assert profile["first_seen"].startswith("2026-02-01")
    assert profile["first_touch"]["campaign"] == "spring"


def test_journey_pages_newest_first_and_filters(
    stack: dict[str, Any], population: dict[str, Any]
) -> None:
    first = get(stack, "/v1/customers/ada/journey", limit=3).json()
    assert [e["id"] for e in first["entries"]] == ["a4", "a3", "a2"]
    rest = get(stack, "/v1/customers/ada/journey", limit=3, cursor=first["next_cursor"]).json()
    assert [e["id"] for e in rest["entries"]] == ["a1"] and rest["next_cursor"] is None
    email = get(stack, "/v1/customers/bob/journey", channel="email").json()
    assert [e["id"] for e in email["entries"]] == ["b1"]
    window = get(
        stack,
        "/v1/customers/ada/journey",
        since="2026-02-02T00:00:00Z",
        until="2026-02-03T23:00:00Z",
    ).json()
    assert [e["id"] for e in window["entries"]] == ["a3", "a2"]


def test_stages_and_segment_with_trait_filter(
    stack: dict[str, Any], population: dict[str, Any]
) -> None:
    counts = {s["stage"]: s["customers"] for s in get(stack, "/v1/stages").json()["stages"]}
    assert counts["purchase"] == 1 and counts["decision"] == 1
    pro = get(stack, "/v1/stages/decision/customers", **{"trait.plan": "free"}).json()
    assert [c["identities"] for c in pro["customers"]] == [["user_id:bob"]]
    none = get(stack, "/v1/stages/decision/customers", **{"trait.plan": "pro"}).json()
    assert none["customers"] == []
    late = get(stack, "/v1/stages/decision/customers", entered_after="2026-02-06T00:00:00Z")
    assert late.json()["customers"] == []


def test_funnel_and_metrics(stack: dict[str, Any], population: dict[str, Any]) -> None:
    funnel = get(
        stack, "/v1/funnel", since="2026-01-01T00:00:00Z", until="2026-03-01T00:00:00Z"
    ).json()["groups"]["all"]["stages"]
    by_stage = {s["stage"]: s for s in funnel}
    assert by_stage["awareness"]["reached"] == 2
    assert by_stage["awareness"]["conversion_to_next"] == 0.5
    assert by_stage["consideration"]["median_seconds_to_next"] is None  # ada skipped decision
    assert by_stage["purchase"]["reached"] == 1
    grouped = get(
        stack,
        "/v1/funnel",
        group_by="channel",
        since="2026-01-01T00:00:00Z",
        until="2026-03-01T00:00:00Z",
    ).json()["groups"]
    assert set(grouped) == {"web", "email"}
    metrics = get(
        stack, "/v1/metrics", since="2026-01-01T00:00:00Z", until="2026-03-01T00:00:00Z"
    ).json()
    assert metrics["customers_seen"] == 2 and metrics["conversion_rate"] == 0.5
    assert metrics["lifetime_value"]["average"] == 120.5
    assert metrics["lifetime_value"]["by_first_touch_channel"] == {"web": 120.5}


def test_access_control(stack: dict[str, Any]) -> None:
    assert get(stack, "/v1/stages", headers={}).status_code == 401
    assert (
        get(stack, "/v1/stages", headers={"Authorization": f"Bearer {WRITE_KEY}"}).status_code
        == 401
    )
    forbidden = httpx.delete(f"{stack['api']}/v1/customers/ada", headers=READ)
    assert forbidden.status_code == 403
    assert get(stack, "/v1/funnel", group_by="nonsense").status_code == 400


def replay_topic(stack: dict[str, Any], bootstrap: str) -> int:
    topic = stack["env"]["TOUCHPATH_TOPIC_TOUCHPOINTS"]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1000)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    old = list(consumer)  # everything so far (the iterator stops after 1 s of silence)
    consumer.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for record in old:
        producer.send(topic, value=record.value, partition=record.partition)
    producer.flush()
    producer.close()
    return len(old)


def test_erase_is_complete_and_replay_does_not_resurrect(
    stack: dict[str, Any], population: dict[str, Any], bootstrap: str, redis_client: Any
) -> None:
    prefix = stack["env"]["TOUCHPATH_REDIS_PREFIX"]
    response = httpx.delete(f"{stack['api']}/v1/customers/ada", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert get(stack, "/v1/customers/ada/stage").status_code == 404
    leftovers = [
        k
        for k in redis_client.scan_iter(f"{prefix}:*")
        if any(s in k for s in ("ada", "anon-ada-1")) and ":erased:" not in k
    ]
    assert leftovers == []
    for key in redis_client.scan_iter(f"{prefix}:*"):
        if redis_client.type(key) == "string" and ":erased:" not in key:
            assert "anon-ada-1" not in (redis_client.get(key) or "")
    assert replay_topic(stack, bootstrap) >= 1
    post(
        stack,
        [
            {
                "type": "track",
                "userId": "bob",
                "event": "Order Completed",
                "messageId": "after-replay",
                "timestamp": DAY.format(6),
            }
        ],
    )
    wait_for(lambda: get(stack, "/v1/customers/bob/stage").json()["stage"] == "purchase")
    assert get(stack, "/v1/customers/ada/stage").status_code == 404
    post(
        stack,
        [
            {
                "type": "track",
                "userId": "ada",
                "event": "Product Viewed",
                "messageId": "ada-again",
                "timestamp": DAY.format(7),
            }
        ],
    )
    fresh = wait_for(
        lambda: (
            get(stack, "/v1/customers/ada").json().get("customer_id")
            and get(stack, "/v1/customers/ada").json()
        )
    )
    assert fresh["counts"]["events"] == 1 and fresh["stage"] == "consideration"
