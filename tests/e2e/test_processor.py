"""The processor end to end: events through the real broker into the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from store.codecs import decode_profile
from store.keys import Keys
from tests.e2e.conftest import read_topic, stack_env, start_service, wait_for
from touchpath.records import encode_touchpoints


def event(kind: str, message_id: str, at: str, **fields: object) -> dict:
    body = {
        "type": kind,
        "messageId": message_id,
        "timestamp": at,
        "receivedAt": at,
        "context": {"channel": fields.pop("channel", "web")},
        "source": "test",
    }
    body.update(fields)
    return body


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    env = stack_env(bootstrap, redis_url)
    processors = [start_service("processor", env, run_dir) for _ in range(2)]
    yield env
    for child in processors:
        child.stop()


def produce(bootstrap: str, topic: str, partition: int, events: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, value=encode_touchpoints(events, "test"), partition=partition).get(10)
    producer.close()


def customer(client: redis.Redis, prefix: str, identifier: str) -> dict | None:
    cid = client.get(Keys(prefix).customer_of(identifier))
    blob = client.get(Keys(prefix).customer(cid)) if cid else None
    return decode_profile(blob) if blob else None


def test_anonymous_and_identified_events_on_different_partitions_become_one_customer(
    stack: dict[str, str], bootstrap: str, redis_client: redis.Redis
) -> None:
    topic, prefix = stack["TOUCHPATH_TOPIC_TOUCHPOINTS"], stack["TOUCHPATH_REDIS_PREFIX"]
    # device 1 browses anonymously, device 2 too; then the person identifies on both devices
    produce(
        bootstrap,
        topic,
        0,
        [
            event(
                "page",
                "m1",
                "2026-03-01T10:00:00.000Z",
                anonymousId="dev-1-aaaa",
                properties={"path": "/"},
            ),
            event(
                "track",
                "m2",
                "2026-03-01T10:05:00.000Z",
                anonymousId="dev-1-aaaa",
                event="Product Viewed",
            ),
        ],
    )
    produce(
        bootstrap,
        topic,
        1,
        [
            event(
                "page",
                "m3",
                "2026-03-02T09:00:00.000Z",
                anonymousId="dev-2-bbbb",
                properties={"path": "/pricing"},
            ),
            event(
                "identify",
                "m4",
                "2026-03-02T09:01:00.000Z",
                anonymousId="dev-2-bbbb",
                userId="ada",
                traits={"email": "Ada@Example.com"},
            ),
        ],
    )
    produce(
        bootstrap,
        topic,
        2,
        [
            event(
                "identify", "m5", "2026-03-01T10:06:00.000Z", anonymousId="dev-1-aaaa", userId="ada"
            ),
            event(
                "track",
                "m6",
                "2026-03-03T12:00:00.000Z",
                userId="ada",
                event="Order Completed",
                properties={"revenue": 30},
            ),
            event(
                "track",
                "m6",
                "2026-03-03T12:00:00.000Z",
                userId="ada",
                event="Order Completed",
                properties={"revenue": 30},
            ),  # duplicate delivery
        ],
    )

    def merged() -> dict | None:
        profile = customer(redis_client, prefix, "anonymous_id:dev-2-bbbb")
        return (
            profile
            if profile and profile["stage"] == "purchase" and len(profile["identities"]) == 4
            else None
        )

    profile = wait_for(merged, 40)
    assert set(profile["identities"]) == {
        "user_id:ada",
        "email:ada@example.com",
        "anonymous_id:dev-1-aaaa",
        "anonymous_id:dev-2-bbbb",
    }
    for identifier in profile["identities"]:
        assert customer(redis_client, prefix, identifier)["id"] == profile["id"]
    assert profile["history"]["awareness"][1] == "m1"
    assert profile["history"]["consideration"][1] == "m2"
    assert profile["history"]["purchase"][1] == "m6"
    data = redis_client.hgetall(Keys(prefix).anchor("user_id:ada", "data"))
    assert data["c:orders"] == "1" and float(data["c:revenue"]) == 30.0

    def announced() -> list[dict] | None:
        """The customer's changes once the latest agrees with the final state (the outbox
        is published after the state is written, so the topic may lag a moment)."""
        topic_changes = read_topic(bootstrap, stack["TOUCHPATH_TOPIC_STAGE_CHANGES"], 10**6, 2)
        mine = [c for c in topic_changes if c["customer_id"] == profile["id"]]
        latest = max(mine, key=lambda c: (c["at_ms"], c["to"]), default=None)
        return mine if latest and latest["to"] == "purchase" else None

    changes = wait_for(announced, 40)
    keys = [(c["customer_id"], c["to"], c["at_ms"], c["message_id"]) for c in changes]
    assert len(keys) == len(set(keys))


def test_undecodable_record_goes_to_dead_letter_and_partition_moves_on(
    stack: dict[str, str], bootstrap: str, redis_client: redis.Redis
) -> None:
    topic, prefix = stack["TOUCHPATH_TOPIC_TOUCHPOINTS"], stack["TOUCHPATH_REDIS_PREFIX"]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, value=b"{not json", partition=0).get(10)
    producer.close()
    produce(
        bootstrap,
        topic,
        0,
        [event("page", "after-bad", "2026-03-05T10:00:00.000Z", anonymousId="dev-3-cccc")],
    )
    wait_for(lambda: customer(redis_client, prefix, "anonymous_id:dev-3-cccc"))
    dead = wait_for(
        lambda: (
            [
                d
                for d in read_topic(bootstrap, stack["TOUCHPATH_TOPIC_DEAD_LETTER"], 1, timeout_s=2)
                if d.get("stage") == "processor"
            ]
            or None
        )
    )
    assert dead[0]["raw"] == "{not json" and "JSON" in dead[0]["reason"]
