"""What was announced (``P:announced``) through the real scripts: the short form a live
customer's record takes, the full record kept once its profile goes, and the records older
versions wrote, each still counting as told (store/codecs.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from infra.redis_clients import route
from processor.resolver import Resolver
from processor.store import ClusterWrite, JourneyStore
from store import scripts
from store.codecs import StoredAnnounced, decode_announced
from tests.reference import make_event
from touchpath.announcements import announced_record
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_700_000_000_000
MINUTE = 60_000


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class Journeys:
    """A fresh prefix with the real store and resolver; what each resolution announced."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.store = JourneyStore(client, f"ann{uuid.uuid4().hex[:8]}")
        self.resolver = Resolver(self.store, MODEL, POLICY)
        self.keys = self.store.keys

    def send(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        applied = self.store.apply([effects_of(e, MODEL, POLICY) for e in events]).applied
        return self.resolve({a.cluster for a in applied if a.needs_resolution})

    def resolve(self, clusters: set[str]) -> list[dict[str, Any]]:
        return self.resolver.resolve(clusters).changes

    def customer(self, identifier: str) -> str:
        return self.client.get(self.keys.customer_of(identifier)).decode()

    def profile(self, cid: str) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.customer(cid))
        return orjson.loads(raw) if raw else None

    def raw(self, cid: str) -> bytes | None:
        return self.client.hget(self.keys.announced, cid)

    def stored(self, cid: str) -> StoredAnnounced | None:
        return decode_announced(self.raw(cid), self.profile(cid))

    def cluster(self, identifier: str) -> str:
        return self.client.get(self.keys.identity(identifier)).decode()


def anonymous(message_id: str, minute: int, name: str, device: str = "d1") -> dict[str, Any]:
    return make_event("track", message_id, T0 + minute * MINUTE, anonymousId=device, event=name)


def test_a_live_customer_s_record_is_the_short_form_of_its_history(
    client: redis.Redis,
) -> None:
    j = Journeys(client)
    told = j.send(anonymous("v1", 1, "Product Viewed"), anonymous("c1", 2, "Checkout Started"))
    cid = j.customer("anonymous_id:d1")
    assert [c["change"] for c in told] == ["entered", "entered"]
    profile = j.profile(cid)
    assert profile is not None
    assert j.raw(cid) is not None and len(j.raw(cid) or b"") == 9
    assert j.stored(cid) == StoredAnnounced(announced_record(profile), True, True)
    assert j.send(anonymous("v1", 1, "Product Viewed")) == []  # a replay: nothing again


def test_resolving_an_unchanged_customer_writes_no_record(client: redis.Redis) -> None:
    j = Journeys(client)
    j.send(anonymous("v1", 1, "Product Viewed"))
    written: list[tuple[Any, ...]] = []
    write_clusters = j.store.write_clusters

    def spy(writes: list[ClusterWrite]) -> list[ClusterWrite]:
        written.extend(c for w in writes for c in w.commands)
        return write_clusters(writes)

    j.store.write_clusters = spy  # type: ignore[method-assign]
    assert j.resolve({j.cluster("anonymous_id:d1")}) == []
    assert written == []


def test_a_customer_merged_away_and_split_back_off_is_not_told_its_entries_again(
    client: redis.Redis,
) -> None:
    """Its profile goes with the merge, so its record is kept in full: when the split brings
    the same id back, the entries it was told are not announced again."""
    j = Journeys(client)
    j.send(anonymous("v1", 1, "Product Viewed"), anonymous("c1", 2, "Checkout Started"))
    device = j.customer("anonymous_id:d1")
    record = announced_record(j.profile(device) or {})
    tie = make_event("identify", "i1", T0 + 3 * MINUTE, anonymousId="d1", userId="u1")
    j.send(tie, make_event("track", "o1", T0 + 4 * MINUTE, userId="u1", event="Order Completed"))
    user = j.customer("user_id:u1")
    assert user != device and j.profile(device) is None
    assert j.stored(device) == StoredAnnounced(record, short=False)  # kept in full
    block = client.register_script(scripts.source("block"))
    args = [j.keys.prefix, "anonymous_id:d1", orjson.dumps({"by": "test", "at": T0})]
    assert block(keys=route(j.keys.prefix), args=args)
    told = j.resolve({j.cluster("anonymous_id:d1")})
    assert j.customer("anonymous_id:d1") == device  # the same id is back
    assert [c for c in told if c["customer_id"] == device] == []
    assert j.stored(device) == StoredAnnounced(record, True, True)
    assert {c["customer_id"] for c in told} == {user}  # the user's corrections only


@pytest.mark.parametrize("form", ["full record", "one entry"])
def test_records_older_versions_wrote_count_as_told_and_take_the_short_form(
    client: redis.Redis, form: str
) -> None:
    j = Journeys(client)
    j.send(anonymous("v1", 1, "Product Viewed"), anonymous("c1", 2, "Checkout Started"))
    cid = j.customer("anonymous_id:d1")
    profile = j.profile(cid) or {}
    stage, (at_ms, message_id, *_) = profile["stage"], profile["history"][profile["stage"]]
    older = {
        "full record": orjson.dumps(announced_record(profile)),
        "one entry": orjson.dumps([stage, at_ms, message_id]),
    }[form]
    client.hset(j.keys.announced, cid, older)
    assert j.resolve({j.cluster("anonymous_id:d1")}) == []
    assert j.stored(cid) == StoredAnnounced(announced_record(profile), True, True)
    told = j.send(anonymous("o1", 3, "Order Completed"))
    assert [(c["stage"], c["change"]) for c in told] == [("purchase", "entered")]


def test_a_short_form_not_matching_its_profile_counts_the_history_as_told_and_is_logged(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    j = Journeys(client)
    j.send(anonymous("v1", 1, "Product Viewed"))
    cid = j.customer("anonymous_id:d1")
    client.hset(j.keys.announced, cid, b"=zzzzzzzz")
    with caplog.at_level(logging.WARNING, logger="processor.resolver"):
        assert j.resolve({j.cluster("anonymous_id:d1")}) == []
    assert any("not matching" in r.getMessage() for r in caplog.records)
    stored = j.stored(cid)
    assert stored is not None and stored.short and stored.matches  # written again
