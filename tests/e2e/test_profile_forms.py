"""Profiles stored in full (the JSON of versions before the compact form, issue #20) in a live
store: the resolver and the API read them as they were, the resolver leaves the unchanged ones
as they are (no write, no announcement) and stores a changed one compact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from api.readmodel import ReadModel
from store.codecs import COMPACT_MARK, decode_profile
from tests.e2e.test_store_bounds import MODEL, Store, event


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _read_by_api(redis_url: str, prefix: str, cids: list[str]) -> list[dict | None]:
    async def run() -> list[dict | None]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await ReadModel(client, prefix, MODEL).profiles(cids)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_profiles_stored_in_full_read_alike_and_change_to_compact(
    client: redis.Redis, redis_url: str
) -> None:
    store = Store(client)
    keys = store.store.keys
    store.send([event(1, userId="a", event="Product Viewed"), event(2, userId="b", type="page")])
    cids = {u: client.get(keys.customer_of(f"user_id:{u}")).decode() for u in ("a", "b")}
    compact = {u: client.get(keys.customer(cid)) for u, cid in cids.items()}
    assert all(orjson.loads(raw).get(COMPACT_MARK) for raw in compact.values())
    derived = {u: decode_profile(raw) for u, raw in compact.items()}
    full = {u: orjson.dumps(profile) for u, profile in derived.items()}
    for u, cid in cids.items():  # as the previous version stored them
        client.set(keys.customer(cid), full[u])
    assert store.customer("user_id:a") == derived["a"]
    assert _read_by_api(redis_url, keys.prefix, [cids["a"], cids["b"]]) == [
        derived["a"],
        derived["b"],
    ]
    clusters = [client.get(keys.identity(f"user_id:{u}")).decode() for u in ("a", "b")]
    report = store.resolver.resolve(clusters)  # derived again: nothing changed
    assert report.changes == []
    assert [client.get(keys.customer(cids[u])) for u in ("a", "b")] == [full["a"], full["b"]]

    store.send([event(3, userId="a", event="Checkout Started")])
    assert orjson.loads(client.get(keys.customer(cids["a"])))[COMPACT_MARK] == MODEL.version
    assert client.get(keys.customer(cids["b"])) == full["b"]  # untouched: still in full
    assert store.customer("user_id:a")["stage"] == "decision"
