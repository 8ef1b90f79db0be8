"""A store whose timelines were written in the format before (JSON objects with ``at``) and
one written now (positional arrays: store/codecs.py) answer the journey endpoint and
re-evaluate alike: the same events go through the real scripts and resolver into two stores,
one store's entries are rewritten in the old format, then both are read through the API and
re-evaluated under other rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from processor.resolver import Resolver
from processor.store import JourneyStore
from store.codecs import decode_journey_entry, decode_profile
from store.keys import Keys
from tests.e2e.test_store_differential import (
    POLICY,
    _customers,
    _hash,
    _under,
    _zset,
    deliveries,
    drop,
    run_both,
)
from tests.unit.test_processing_invariants import TRAIT_MODEL
from tests.unit.test_reevaluation import OTHER
from touchpath.settings import load_settings

READ = "tok_formats_read"


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def api(redis_url: str, prefix: str) -> TestClient:
    settings = load_settings(
        redis_url=redis_url, redis_prefix=prefix, api_tokens=f"{READ}=read", log_level="ERROR"
    )
    return TestClient(create_app(settings, tune_gc=False))


def to_old_format(client: redis.Redis, keys: Keys) -> int:
    """Rewrite every timeline entry under ``keys`` as the format before wrote it (the entry's
    fields by name, sorted, ``at`` included); the number of entries rewritten."""
    rewritten = 0
    for name in _under(client, keys, "a:*:journey"):
        key = f"{keys.prefix}:{name}"
        for member, score in client.zrange(key, 0, -1, withscores=True):
            assert member.startswith(b"[1,")  # written now: positional
            old = orjson.dumps(decode_journey_entry(member, score), option=orjson.OPT_SORT_KEYS)
            client.zrem(key, member)
            client.zadd(key, {old: score})
            rewritten += 1
    return rewritten


def journeys(client: redis.Redis, keys: Keys, api: TestClient) -> dict[str, Any]:
    """Every customer's journey as the endpoint answers it (customer id → answer)."""
    found = {}
    for name in _under(client, keys, "cust:*"):
        customer_id = name.split(":", 1)[1]
        answer = api.get(
            f"/v1/customers/{customer_id}/journey",
            params={"type": "customer_id", "limit": 500},
            headers={"Authorization": f"Bearer {READ}"},
        )
        assert answer.status_code == 200, answer.text
        found[customer_id] = answer.json()
    return found


def re_evaluated(client: redis.Redis, keys: Keys) -> tuple[Any, ...]:
    """Re-evaluate every cluster under other rules; the customers and the anchors' stored
    facts then (by name without the prefix)."""
    store = JourneyStore(client, keys.prefix)
    resolver = Resolver(store, OTHER, POLICY, chunk=2, unversioned=TRAIT_MODEL.version)
    resolver.resolve([name.split(":")[-1] for name in _under(client, keys, "cl:*")])
    names = [f"{keys.prefix}:{name}" for name in _under(client, keys, "cust:*")]
    customers = _customers([decode_profile(client.get(name) or b"null") for name in names])
    anchors = {}
    for name in _under(client, keys, "a:*:data"):
        anchor = name[2:].rsplit(":", 1)[0]
        anchors[anchor] = (
            _hash(client, keys.anchor(anchor, "data")),
            *(_zset(client, keys.anchor(anchor, part)) for part in ("cond", "buys", "days")),
        )
    return resolver.reevaluated, customers, anchors


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=deliveries())
def test_old_format_timelines_answer_the_journey_and_re_evaluate_the_same(
    client: redis.Redis, redis_url: str, batches: list[list[dict[str, Any]]]
) -> None:
    new, _ = run_both(client, batches, TRAIT_MODEL)
    old, _ = run_both(client, batches, TRAIT_MODEL)
    try:
        assert to_old_format(client, old) > 0
        with api(redis_url, new.prefix) as new_api, api(redis_url, old.prefix) as old_api:
            answered = journeys(client, new, new_api)
            assert answered and journeys(client, old, old_api) == answered
        done = re_evaluated(client, new)
        assert done[0] > 0 and re_evaluated(client, old) == done
    finally:
        drop(client, new)
        drop(client, old)
