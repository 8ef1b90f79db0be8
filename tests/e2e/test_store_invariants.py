"""The order-independence invariant through the real Lua scripts and a real Redis.

The pure-core property tests (``tests/unit/test_processing_invariants.py``) fold events with an
in-memory mirror; this suite sends the same generated events, shuffled, partly redelivered
and cut into batches, through ``JourneyStore.apply`` (grouped by anchor, link markers) and the
``Resolver`` (read script, compare-and-swap write script), and requires the same customers and
the same account index (which matches the profiles).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.resolver import Resolver
from processor.store import JourneyStore
from processor.triggers import Claimed, Settled, TriggerStore
from store.codecs import decode_profile
from tests.conftest import redis_for_keys
from tests.reference import ReferenceStore
from tests.unit.test_announcements import PATTERNS, track
from tests.unit.test_processing_invariants import TRAIT_MODEL, events
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.stages import StageModel, load_stage_model

MODEL = load_stage_model()
POLICY = IdentityPolicy()
#: The hash tag of every prefix here: one slot (and node) on a cluster (tests/cluster).
TAG = "{inv}"


def final_state(
    client: redis.Redis, batches: list[list[dict[str, Any]]], model: StageModel = MODEL
) -> dict[str, Any]:
    """Apply and resolve batch by batch under a fresh prefix; every customer profile."""
    store = JourneyStore(client, f"{TAG}{uuid.uuid4().hex[:8]}")
    keys = store.keys
    resolver = Resolver(store, model, POLICY, chunk=2)  # several pipelined chunks
    for batch in batches:
        applied = store.apply([effects_of(e, model, POLICY) for e in batch], chunk=3).applied
        resolver.resolve(a.cluster for a in applied if a.needs_resolution)
    profiles = {}
    for key in client.scan_iter(store.keys.customer("*")):
        profile = decode_profile(client.get(key) or b"null")
        profiles[profile["id"]] = profile
    accounts = {}
    for stored in client.zrange(keys.accounts, 0, -1):
        group_id = stored.decode()
        members = client.smembers(keys.account_members(group_id))
        accounts[group_id] = sorted(m.decode() for m in members)
    return {"profiles": profiles, "accounts": accounts}


def assert_account_index(state: dict[str, Any]) -> None:
    """``P:acct:<groupId>:members`` holds exactly the customers whose profile has it."""
    members: dict[str, list[str]] = {}
    for cid, profile in sorted(state["profiles"].items()):
        for group_id in profile["accounts"]:
            members.setdefault(group_id, []).append(cid)
    assert {g: m for g, m in state["accounts"].items() if m} == members


def cut(stream: list[dict[str, Any]], data: st.DataObject) -> list[list[dict[str, Any]]]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=3)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@pytest.fixture(scope="module")
def client(redis_url: str) -> redis.Redis:
    return redis_for_keys(redis_url, TAG)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data(), events())
def test_the_store_ends_the_same_whatever_the_order_redelivery_and_batching(
    client: redis.Redis, data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    expected = final_state(client, [base])
    extra = data.draw(st.lists(st.sampled_from(base), max_size=len(base)))
    shuffled = data.draw(st.permutations(base + extra))
    found = final_state(client, cut(shuffled, data))
    assert found == expected
    assert expected["profiles"], "every generated event has an identifier, so someone exists"
    assert_account_index(found)
    reference = ReferenceStore(MODEL)  # active days and purchase times as the Lua stores them
    reference.apply_batch(base)
    assert {p["id"]: (p["cycles"], p["last_active"]) for p in reference.profiles.values()} == {
        cid: (p["cycles"], p["last_active"]) for cid, p in expected["profiles"].items()
    }


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data(), events())
def test_trait_conditions_end_the_same_whatever_the_order(
    client: redis.Redis, data: st.DataObject, base: list[dict[str, Any]]
) -> None:
    """Gated candidates and trait values through the real scripts, against the reference."""
    expected = final_state(client, [base], TRAIT_MODEL)
    extra = data.draw(st.lists(st.sampled_from(base), max_size=len(base)))
    shuffled = data.draw(st.permutations(base + extra))
    assert final_state(client, cut(shuffled, data), TRAIT_MODEL) == expected
    reference = ReferenceStore(TRAIT_MODEL)
    reference.apply_batch(base)
    assert {p["id"]: p["history"] for p in reference.profiles.values()} == {
        cid: p["history"] for cid, p in expected["profiles"].items()
    }


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_the_resolver_announces_what_the_reference_announces(
    client: redis.Redis, pattern: str
) -> None:
    """Through the real scripts: the outbox, the webhook outbox and the live stream each get
    the reference model's announcements, in its order; a replay adds none."""
    store = JourneyStore(client, f"{TAG}ann{uuid.uuid4().hex[:8]}")
    client.hset(store.keys.webhooks("subs"), "sub", "{}")  # the webhook outbox is written
    resolver = Resolver(store, MODEL, POLICY)
    reference = ReferenceStore(MODEL)
    batches = [[track(m, minute, name) for m, minute, name in b] for b in PATTERNS[pattern]]
    for batch in [*batches, *batches]:  # then everything again: nothing new to announce
        applied = store.apply([effects_of(e, MODEL, POLICY) for e in batch]).applied
        resolver.resolve(a.cluster for a in applied if a.needs_resolution)
        reference.apply_batch(batch)
    expected = [c["change_id"] for c in reference.announcements]
    for stream in (store.keys.outbox, store.keys.webhook_outbox, store.keys.live_changes):
        told = [orjson.loads(f[b"change"]) for _, f in client.xrange(stream)]
        assert [c["change_id"] for c in told] == expected


def test_the_webhook_outbox_is_written_only_while_there_are_subscriptions(
    client: redis.Redis,
) -> None:
    """A change nobody subscribed to is delivered to no one: it is not kept for webhooks
    (the Kafka outbox and the live stream still get it); changes after a subscription are."""
    store = JourneyStore(client, f"{TAG}subs{uuid.uuid4().hex[:8]}")
    resolver = Resolver(store, MODEL, POLICY)

    def send(*events: dict[str, Any]) -> None:
        applied = store.apply([effects_of(e, MODEL, POLICY) for e in events]).applied
        resolver.resolve(a.cluster for a in applied if a.needs_resolution)

    send(track("m1", 1, "Product Viewed"))
    assert client.xlen(store.keys.outbox) == client.xlen(store.keys.live_changes) == 1
    assert client.xlen(store.keys.webhook_outbox) == 0
    client.hset(store.keys.webhooks("subs"), "sub", "{}")
    send(track("m2", 2, "Checkout Started"))
    client.hdel(store.keys.webhooks("subs"), "sub")  # the last one: as DELETE does
    send(track("m3", 3, "Order Completed"))
    told = [orjson.loads(f[b"change"]) for _, f in client.xrange(store.keys.webhook_outbox)]
    assert [c["to"] for c in told] == ["decision"]
    assert client.xlen(store.keys.outbox) == client.xlen(store.keys.live_changes) == 3


def test_trigger_firings_reach_webhooks_only_while_subscribed(
    client: redis.Redis,
) -> None:
    """The same rule for trigger firings (trigger_commit.lua): the Kafka outbox and the live
    stream get every firing; the webhook outbox those stored while ``P:wh:subs`` exists, so
    deleting the last subscription stops them again."""
    keys = JourneyStore(client, f"{TAG}trg{uuid.uuid4().hex[:8]}").keys
    triggers = TriggerStore(client, keys, live_kept=100, webhook_kept=100)

    def fire(n: int) -> None:
        client.zadd(keys.trigger("due"), {f"cus_{n}\x1fcart": 1})
        lease, members = triggers.claim(cutoff_ms=10, lease_ms=1000, count=10)
        assert members == [f"cus_{n}\x1fcart"]
        decision = ("fire", f"f{n}", b"{}", orjson.dumps({"n": n}), "", "", 0)
        settled = Settled(Claimed(f"cus_{n}", "cart", None, {}), None, [decision])
        assert triggers.commit(lease, [settled]) == 1

    def webhook_firings() -> list[int]:
        return [orjson.loads(f[b"change"])["n"] for _, f in client.xrange(keys.webhook_outbox)]

    fire(1)
    client.hset(keys.webhooks("subs"), "sub", "{}")
    fire(2)
    client.hdel(keys.webhooks("subs"), "sub")  # the last subscription: the hash is gone
    fire(3)
    assert webhook_firings() == [2]
    assert client.xlen(keys.trigger("outbox")) == client.xlen(keys.live_changes) == 3
