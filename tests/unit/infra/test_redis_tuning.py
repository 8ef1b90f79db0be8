"""The store's compact encodings: applied to the Redis touchpath starts, checked on others."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.embedded import Child, free_port, spawn
from infra.redis_tuning import STORE_ENCODING, encoding_shortfalls, shortfalls_of
from processor.store import JourneyStore
from tests.reference import make_event
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model


def test_only_value_limits_below_the_stores_are_shortfalls() -> None:
    defaults = {"hash-max-listpack-value": "64", "zset-max-listpack-value": "64"}
    lines = encoding_shortfalls({**defaults, "hash-max-listpack-entries": "512"})
    assert [line.split(" ", 1)[0] for line in lines] == list(defaults)
    assert encoding_shortfalls({k: str(v) for k, v in STORE_ENCODING.items()}) == []
    assert encoding_shortfalls({"hash-max-listpack-value": "4096"}) == []


def test_the_redis_touchpath_starts_keeps_anchors_compact(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert shortfalls_of(client) == []
        store = JourneyStore(client, f"tune{uuid.uuid4().hex[:8]}")
        model, policy = load_stage_model(), IdentityPolicy()
        events = [
            make_event(
                "track",
                uuid.uuid4().hex,
                1_767_225_600_000 + i,
                userId="u1",
                event=name,
                properties={"revenue": 10} if i == 2 else {},
            )
            for i, name in enumerate(["Product Viewed", "Checkout Started", "Order Completed"])
        ]
        store.apply([effects_of(e, model, policy) for e in events])
        anchor = store.keys.anchor("user_id:u1", "data")
        assert max(len(v) for v in client.hvals(anchor)) > 64  # would convert by default
        assert client.object("encoding", anchor) == "listpack"
        assert client.object("encoding", store.keys.anchor("user_id:u1", "journey")) == "listpack"
    finally:
        client.close()


@pytest.fixture
def default_redis(tmp_path: Path) -> Iterator[Child]:
    port = free_port()
    argv = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    child = spawn("redis-default", argv, port, tmp_path / "redis.log")
    yield child
    child.stop()


def test_a_redis_with_default_encodings_is_reported(default_redis: Child) -> None:
    client = redis.Redis(port=default_redis.port)
    try:
        lines = shortfalls_of(client)
    finally:
        client.close()
    assert len(lines) == 2 and all("is 64" in line for line in lines)
