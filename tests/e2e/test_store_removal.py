"""One removal of a customer: the resolver's (a customer merged away or split off) and an
erasure's leave the same index state, through the same Lua (store/scripts/remove_customer.lua).

The same two customers (sharing an account and a stage) are stored under two prefixes with
the real scripts; one prefix removes Ada through the resolver's compare-and-swap write, the
other erases her; then her profile, snapshot entry, funnel row, survey answers, stage and
reached entries and account membership are gone from both, and Bob's are what they were;
whether the profiles are stored compact or in full (as versions before the compact form
stored them: the Lua reads the same fields of both).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from api.erasure import Eraser
from processor.firing import FiringLoop
from processor.resolver import Resolver
from processor.store import ClusterWrite, JourneyStore
from processor.triggers import Settled, TriggerStore
from store.codecs import decode_cluster, decode_profile
from store.keys import Keys
from tests.reference import make_event
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.settings import Settings
from touchpath.stages import load_stage_model
from touchpath.triggers import load_triggers

MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_700_000_000_000


def _events(user: str, device: str, start: int) -> list[dict[str, Any]]:
    who = {"userId": user, "anonymousId": device}
    return [
        make_event("page", f"{user}-1", start, name="Home", properties={"path": "/"}, **who),
        make_event("identify", f"{user}-2", start + 1, traits={"plan": "pro"}, **who),
        make_event("track", f"{user}-3", start + 2, event="Product Added", **who),
        make_event(
            "track",
            f"{user}-4",
            start + 3,
            event="Order Completed",
            properties={"revenue": 5},
            **who,
        ),
        make_event(
            "track",
            f"{user}-5",
            start + 4,
            event="NPS Survey Answered",
            properties={"score": 9},
            **who,
        ),
        make_event("group", f"{user}-6", start + 5, groupId="g1", traits={"seats": 3}, **who),
    ]


EVENTS = [*_events("ada", "dev-a", T0), *_events("bob", "dev-b", T0 + 60_000)]


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _stored(client: redis.Redis) -> tuple[JourneyStore, Resolver]:
    store = JourneyStore(client, f"rm{uuid.uuid4().hex[:8]}")
    resolver = Resolver(store, MODEL, POLICY)
    applied = store.apply([effects_of(e, MODEL, POLICY) for e in EVENTS]).applied
    resolver.resolve(a.cluster for a in applied if a.needs_resolution)
    return store, resolver


def _customer(client: redis.Redis, keys: Keys, identifier: str) -> str:
    return client.get(keys.customer_of(identifier)).decode()


def _index_state(client: redis.Redis, keys: Keys, names: dict[str, str]) -> dict[str, Any]:
    """Stage and reached sets, funnel rows, survey answers, account members and the accounts,
    with customer ids named as in ``names`` (they differ between prefixes)."""

    def name(raw: bytes) -> str:
        return names.get(raw.decode(), raw.decode())

    state: dict[str, Any] = {}
    for family in ("stage", "reached"):
        for stage in MODEL.stages:
            found = client.zrange(getattr(keys, family)(stage), 0, -1, withscores=True)
            state[f"{family}:{stage}"] = {name(m): s for m, s in found}
    for family in ("funnel", "surveys"):
        state[family] = {name(c): v for c, v in client.hgetall(getattr(keys, family)).items()}
    state["members"] = {name(m) for m in client.smembers(keys.account_members("g1"))}
    state["accounts"] = client.zrange(keys.accounts, 0, -1)
    state["profiles"] = {n: client.get(keys.customer(cid)) for cid, n in names.items()}
    return state


def _snapshot_holds(client: redis.Redis, store: JourneyStore, cid: str) -> bool:
    return any(
        f"c:{cid}".encode() in client.hkeys(key)
        for key in client.scan_iter(store.keys.cluster("*"))
    )


def _erase(store: JourneyStore, redis_url: str, identifier: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        settings = Settings(redis_url=redis_url, redis_prefix=store.keys.prefix)
        try:
            assert await Eraser(client, settings, MODEL).erase(identifier, T0 + 10**9)
        finally:
            await client.aclose()

    asyncio.run(run())


def _in_full(client: redis.Redis, keys: Keys) -> None:
    """Every profile as versions before the compact form stored it (the full JSON)."""
    for key in client.scan_iter(keys.customer("*")):
        client.set(key, orjson.dumps(decode_profile(client.get(key) or b"")))


@pytest.mark.parametrize("form", ["compact", "full"])
def test_the_resolver_and_an_erasure_remove_a_customer_alike(
    client: redis.Redis, redis_url: str, form: str
) -> None:
    by_resolver, resolver = _stored(client)
    by_erasure, _ = _stored(client)
    if form == "full":
        for store in (by_resolver, by_erasure):
            _in_full(client, store.keys)
    names = [
        {_customer(client, s.keys, f"user_id:{u}"): u for u in ("ada", "bob")}
        for s in (by_resolver, by_erasure)
    ]
    stores = (by_resolver, by_erasure)
    before = [_index_state(client, s.keys, n) for s, n in zip(stores, names, strict=True)]
    assert before[0] == before[1]
    assert any("ada" in before[0][f"stage:{stage}"] for stage in MODEL.stages)
    assert sum("ada" in before[0][f"reached:{stage}"] for stage in MODEL.stages) > 1
    assert before[0]["members"] == {"ada", "bob"} and before[0]["surveys"].keys() == {"ada", "bob"}

    ada = next(cid for cid, n in names[0].items() if n == "ada")
    cluster = client.get(by_resolver.keys.identity("user_id:ada")).decode()
    [state] = by_resolver.read_clusters([cluster])
    stale = ClusterWrite(cluster, state.version - 1)  # planned against an older version
    resolver._write(stale, state.profiles, {}, [])
    assert by_resolver.write_clusters([stale]) == [stale]
    assert _index_state(client, by_resolver.keys, names[0]) == before[0]  # nothing ran

    write = ClusterWrite(cluster, state.version)
    resolver._write(write, state.profiles, {}, [])  # Ada derived away: her removal branch
    assert by_resolver.write_clusters([write]) == []
    _erase(by_erasure, redis_url, "user_id:ada")

    after = [_index_state(client, s.keys, n) for s, n in zip(stores, names, strict=True)]
    assert after[0] == after[1]
    assert after[0]["members"] == {"bob"} and after[0]["profiles"]["ada"] is None
    for family in ("funnel", "surveys"):
        assert after[0][family] == {"bob": before[0][family]["bob"]}
    for key, members in after[0].items():
        if key.startswith(("stage:", "reached:")):
            assert members == {n: s for n, s in before[0][key].items() if n != "ada"}
    assert not _snapshot_holds(client, by_resolver, ada)
    erased = next(cid for cid, n in names[1].items() if n == "ada")
    assert not _snapshot_holds(client, by_erasure, erased)
    assert decode_profile(after[0]["profiles"]["bob"])["identities"]


def test_an_erasure_in_a_shared_cluster_keeps_its_counts_exact(
    client: redis.Redis, redis_url: str
) -> None:
    """Bob shares Ada's device: one raw cluster, two customers. Erasing Bob leaves the
    cluster with Ada's identifiers and tie only, its counts equal to what it holds, its
    version moved (a resolution in flight re-reads) and Bob no longer listed."""
    store = JourneyStore(client, f"rm{uuid.uuid4().hex[:8]}")
    resolver = Resolver(store, MODEL, POLICY)
    events = [*_events("ada", "dev-s", T0), *_events("bob", "dev-s", T0 + 60_000)]
    applied = store.apply([effects_of(e, MODEL, POLICY) for e in events]).applied
    resolver.resolve(a.cluster for a in applied if a.needs_resolution)
    keys = store.keys
    cluster = client.get(keys.identity("user_id:ada")).decode()
    assert client.get(keys.identity("user_id:bob")).decode() == cluster
    bob = _customer(client, keys, "user_id:bob")
    before = decode_cluster(
        {k.decode(): v.decode() for k, v in client.hgetall(keys.cluster(cluster)).items()}
    )
    assert set(before.identifiers) == {"user_id:ada", "user_id:bob", "anonymous_id:dev-s"}
    assert bob in before.customers and len(before.customers) == 2
    _erase(store, redis_url, "user_id:bob")
    fields = {k.decode(): v.decode() for k, v in client.hgetall(keys.cluster(cluster)).items()}
    after = decode_cluster(fields)
    assert set(after.identifiers) == {"user_id:ada", "anonymous_id:dev-s"}
    assert all("user_id:bob" not in tie for tie in (*after.ties, *after.over))
    assert bob not in after.customers and after.version > before.version
    counts = [int(fields.get(count, 0)) for count in ("ni", "nt", "no")]
    assert counts == [len(after.identifiers), len(after.ties), len(after.over)]


class HeldCommits(TriggerStore):
    """A trigger store whose commits wait to be released: a firing loop that claimed and read
    its timers, and stores what it decided later (a slow or paused processor)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        super().__init__(client, keys, 100, 100)
        self.held: list[tuple[str, Sequence[Settled]]] = []

    def commit(self, lease: str, settled: Sequence[Settled]) -> int:
        self.held.append((lease, settled))
        return 0

    def release(self) -> None:
        for lease, settled in self.held:
            TriggerStore.commit(self, lease, settled)


def test_a_firing_stored_while_a_customer_is_erased_leaves_nothing_of_them(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The firing loop reads Ada's due timer before her erasure and stores its decision after
    the erasure's script: the timer went with the script, so nothing of hers is stored again."""
    triggers = load_triggers()  # lapsing: 60 days without an event after a purchase
    store = JourneyStore(client, f"rm{uuid.uuid4().hex[:8]}")
    resolver = Resolver(store, MODEL, POLICY, triggers=triggers)
    applied = store.apply([effects_of(e, MODEL, POLICY) for e in EVENTS]).applied
    resolver.resolve(a.cluster for a in applied if a.needs_resolution)
    keys = store.keys
    ada, bob = (_customer(client, keys, f"user_id:{u}") for u in ("ada", "bob"))
    held = HeldCommits(client, keys)
    assert FiringLoop(held, triggers, lateness_ms=0, recheck_ms=60_000).step() == 4  # 2 each
    rederive = Eraser.rederive

    def stored_meanwhile(eraser: Eraser) -> None:  # runs right after the erasure's script
        held.release()
        rederive(eraser)

    monkeypatch.setattr(Eraser, "rederive", stored_meanwhile)
    _erase(store, redis_url, "user_id:ada")

    assert client.exists(keys.trigger_state(bob))  # Bob's firing was stored
    assert not client.exists(keys.trigger_state(ada))
    timers = [m.decode() for m in client.zrange(keys.trigger("due"), 0, -1)]
    assert not [m for m in timers if m.startswith(ada)]
    for stream in (keys.trigger("outbox"), keys.live_changes):
        assert ada not in str(client.xrange(stream)) and "ada" not in str(client.xrange(stream))
