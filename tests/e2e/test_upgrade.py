"""Upgrading a store written by the old code: layout 3 → 4, then the new code takes over.

tests/fixtures/layout3-store.json holds every key of a store the code of 515103c (layout 3:
messageIds in the de-duplication sets, active days in ``P:a:<id>:days``, six keys per raw
cluster, profiles, timeline entries, announced records and funnel rows in their full forms)
wrote from the events it lists (tests/fixtures/make_layout3_store.py made it). It is written
back under a prefix of its own, ``migrate_layout`` converts it, and the new code applies
replays of some of the same events, new events for the same people and an erasure. A fresh
store that received the same events directly with the new code must then hold the same
state, as the API reads it: profiles, look-ups, counters, timelines, stage indexes, funnel
rows, survey answers, accounts, announced records, raw clusters, the stage changes
announced; and no key of the old layout may be left.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from api.erasure import Eraser
from api.views import journey_entries, journey_view
from processor.firing import FiringLoop
from processor.resolver import Resolver
from processor.store import LAYOUT_VERSION, JourneyStore, StoreBounds, migrate_layout
from processor.triggers import TriggerStore
from store.codecs import (
    decode_announced,
    decode_cluster,
    decode_firing,
    decode_funnel_row,
    decode_journey,
    decode_profile,
)
from store.keys import Keys
from tests.e2e.test_api import leftovers
from tests.fixtures.make_layout3_store import NOW, trigger_args
from tests.reference import make_event
from tests.unit.test_reevaluation import OTHER
from touchpath.anchors import anchor_data
from touchpath.effects import effects_of
from touchpath.identity import IdentityPolicy
from touchpath.settings import Settings
from touchpath.stages import StageModel, load_stage_model
from touchpath.triggers import Trigger, TriggerModel

FIXTURE = Path(__file__).parents[1] / "fixtures" / "layout3-store.json"
MODEL = load_stage_model()
POLICY = IdentityPolicy()
T0 = 1_700_000_000_000
DAY = 86_400_000
ERASED_AT = T0 + 30 * DAY
#: names of the erased person: identifiers, values, customer id (filled in by the test)
DEE = ["user_id:dee", "anonymous_id:dev-d", "dee@x.io", "dev-d"]
OLD_KEYS = re.compile(r"a:.+:days|cl:[^:]+:.+")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return orjson.loads(FIXTURE.read_bytes())


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _bytes(value: Any) -> bytes:
    return bytes.fromhex(value["hex"]) if isinstance(value, dict) else value.encode()


def load(client: redis.Redis, prefix: str, document: dict[str, Any]) -> None:
    """Write the fixture's keys under ``prefix`` with plain commands."""
    pipe = client.pipeline(transaction=False)
    for name, (kind, contents) in document["keys"].items():
        key = f"{prefix}:{name}"
        if kind == "string":
            pipe.set(key, _bytes(contents))
        elif kind == "hash":
            pipe.hset(key, mapping={_bytes(f): _bytes(v) for f, v in contents.items()})
        elif kind == "zset":
            pipe.zadd(key, {_bytes(m): s for m, s in contents})
        elif kind == "set":
            pipe.sadd(key, *(_bytes(m) for m in contents))
        elif kind == "stream":
            for entry_id, fields in contents:
                pipe.xadd(key, {_bytes(f): _bytes(v) for f, v in fields.items()}, id=entry_id)
        else:
            raise AssertionError(f"{name}: type {kind}")
    pipe.execute()


def _apply(store: JourneyStore, resolver: Resolver, events: list[dict[str, Any]]) -> list[bool]:
    """Apply and resolve one batch, then settle the due trigger timers (clock: the
    fixture's); whether each event was new."""
    applied = store.apply([effects_of(e, MODEL, POLICY) for e in events]).applied
    resolver.resolve(a.cluster for a in applied if a.needs_resolution)
    firing = TriggerStore(store.client, store.keys, 1000, 1000)
    loop = FiringLoop(firing, resolver.triggers, 0, 3_600_000, clock=lambda: NOW / 1000)
    while loop.step():
        pass
    return [a.new for a in applied]


def _erase(redis_url: str, prefix: str, erasure_key: str, identifier: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        settings = Settings(redis_url=redis_url, redis_prefix=prefix, erasure_key=erasure_key)
        try:
            assert await Eraser(client, settings, MODEL).erase(identifier, ERASED_AT)
        finally:
            await client.aclose()

    asyncio.run(run())


def _later(batches: list[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], ...]:
    """After the upgrade: replays of old events; new events for the same people (each a
    stage change or a merge), with replays among them; replays of the person erased; and a
    message sent again at another time once the de-duplication window left it behind (new
    again: its one timeline entry moves)."""
    old = {e["messageId"]: e for batch in batches for e in batch}
    replays = [old[m] for m in ("a1", "a3", "b2", "c1", "d2", "a7", "b4")]
    t = T0 + 3 * 86_400_000
    new = [
        make_event("track", "a8", t, userId="ada", event="Checkout Started"),
        make_event("track", "a9", t + 60_000, userId="ada", event="Order Completed", properties={}),
        make_event("identify", "c3", t + 5, anonymousId="dev-c", userId="cy", traits={"n": 1}),
        make_event("track", "c4", t + 6, userId="cy", event="Product Added"),
        make_event("track", "b6", t + DAY, userId="bob", event="Support Ticket Created"),
        make_event("page", "b7", t + DAY, anonymousId="dev-b", name="Help", channel="app"),
        make_event("page", "a0", T0 - 3_600_000, anonymousId="dev-a", name="Pricing"),
        make_event("identify", "f3", t + 7, userId="fay", anonymousId="dev-f"),
        make_event("page", "g5", t + 8, userId="gus", anonymousId="dev-g5", name="Home"),
        make_event("page", "b8", T0 + 10 * DAY, anonymousId="dev-b", name="Home"),
        make_event("page", "c5", T0 + 11 * DAY, anonymousId="dev-c", name="Home"),
        old["a4"],
        old["c2"],
    ]
    erased = [old[m] for m in ("d1", "d3", "d4")]
    again = make_event(
        "track",
        "c1",
        T0 + 11 * DAY + 1000,
        anonymousId="dev-c",
        event="Email Opened",
        channel="email",
    )
    return replays, new, erased, [again]


def run(
    client: redis.Redis, redis_url: str, document: dict[str, Any], upgraded: bool
) -> tuple[JourneyStore, list[list[bool]], list[bytes], list[bytes]]:
    """The fixture's events through the old code (the fixture, migrated) or the new code,
    then the same later events and erasure through the new code; each later batch's
    outcomes, the stage changes in the outbox before the later events and those after."""
    prefix = f"up{uuid.uuid4().hex[:8]}"
    key = document["erasure_key"]
    store = JourneyStore(client, prefix, StoreBounds(**document["bounds"]), key)
    triggers = TriggerModel(tuple(Trigger(**trigger_args(t)) for t in document["triggers"]))
    resolver = Resolver(store, MODEL, POLICY, triggers=triggers)
    if upgraded:
        load(client, prefix, document)
        assert client.get(store.keys.layout) == b"3"
        assert migrate_layout(client, prefix, ERASED_AT) > 0
        assert migrate_layout(client, prefix, ERASED_AT) == 0  # once is enough
    else:
        migrate_layout(client, prefix, T0)
        client.hset(store.keys.webhooks("subs"), "sub", "{}")
        for batch in document["batches"]:
            _apply(store, resolver, batch)
    assert client.get(store.keys.layout) == str(LAYOUT_VERSION).encode()
    told = _changes(client, store.keys.outbox)
    last = _text(client.xrevrange(store.keys.outbox, count=1)[0][0])
    told += _changes(client, store.keys.trigger("outbox"))
    start = "(" + _text(client.xrevrange(store.keys.trigger("outbox"), count=1)[0][0])
    replays, new, erased, again = _later(document["batches"])
    outcomes = [_apply(store, resolver, replays), _apply(store, resolver, new)]
    _erase(redis_url, prefix, key, "user_id:dee")
    outcomes += [_apply(store, resolver, erased), _apply(store, resolver, again)]
    after = _changes(client, store.keys.outbox, "(" + last)
    return store, outcomes, told, after + _changes(client, store.keys.trigger("outbox"), start)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _names(client: redis.Redis, keys: Keys) -> list[str]:
    start = len(keys.prefix) + 1
    return sorted(_text(k)[start:] for k in client.scan_iter(f"{keys.prefix}:*", count=1000))


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {_text(f): _text(v) for f, v in client.hgetall(key).items()}


def _changes(client: redis.Redis, stream: str, start: str = "-") -> list[bytes]:
    """The stage changes in an outbox stream from ``start`` on."""
    return [
        orjson.dumps(orjson.loads(fields[b"change"]), option=orjson.OPT_SORT_KEYS)
        for _, fields in client.xrange(stream, start)
    ]


def state(client: redis.Redis, keys: Keys, model: StageModel = MODEL) -> dict[str, Any]:
    """Everything the API answers from, decoded; raw clusters by their identifiers."""
    names = _names(client, keys)
    profiles = {
        n[5:]: decode_profile(client.get(f"{keys.prefix}:{n}") or b"")
        for n in names
        if n.startswith("cust:")
    }
    found: dict[str, Any] = {"profiles": profiles}
    found["lookups"] = {
        n: _text(client.get(f"{keys.prefix}:{n}") or b"") for n in names if n.startswith("idc:")
    }
    anchors = [n[2:].rsplit(":", 1)[0] for n in names if re.fullmatch(r"a:.+:data", n)]
    found["anchors"] = {a: anchor_data(_hash(client, keys.anchor(a, "data"))) for a in anchors}
    found["seen"] = {
        a: client.zrange(keys.anchor(a, "seen"), 0, -1, withscores=True) for a in anchors
    }
    found["cond"] = {
        a: client.zrange(keys.anchor(a, "cond"), 0, -1, withscores=True) for a in anchors
    }
    found["buys"] = {
        a: client.zrange(keys.anchor(a, "buys"), 0, -1, withscores=True) for a in anchors
    }
    found["journeys"] = {
        cid: [
            journey_view(e)
            for e in journey_entries(
                e
                for identifier in profile["identities"]
                for e in decode_journey(
                    client.zrevrangebyscore(
                        keys.anchor(identifier, "journey"), "+inf", "-inf", withscores=True
                    )
                )
            )
        ]
        for cid, profile in profiles.items()
    }
    for family in ("stage", "reached"):
        for stage in model.stages:
            key = getattr(keys, family)(stage)
            found[f"{family}:{stage}"] = client.zrange(key, 0, -1, withscores=True)
    found["funnel"] = {c: decode_funnel_row(v) for c, v in _hash(client, keys.funnel).items()}
    found["surveys"] = {c: orjson.loads(v) for c, v in _hash(client, keys.surveys).items()}
    found["announced"] = {}  # as told: its form (short, full, older) may differ
    for cid, raw in _hash(client, keys.announced).items():
        stored = decode_announced(raw, profiles.get(cid))
        assert stored is not None and stored.matches, cid
        found["announced"][cid] = stored.record
    found["accounts"] = client.zrange(keys.accounts, 0, -1)
    found["timers"] = client.zrange(keys.trigger("due"), 0, -1, withscores=True)
    found["firings"] = {
        n: {_text(f): decode_firing(v) for f, v in client.hgetall(f"{keys.prefix}:{n}").items()}
        for n in names
        if n.startswith("trg:s:")
    }
    found["members"] = {
        n: sorted(client.smembers(f"{keys.prefix}:{n}")) for n in names if n.startswith("acct:")
    }
    clusters = {}
    for n in names:
        if re.fullmatch(r"cl:[^:]+", n):
            parts = decode_cluster(_hash(client, f"{keys.prefix}:{n}"))
            counts = [_hash(client, f"{keys.prefix}:{n}").get(c, "0") for c in ("ni", "nt", "no")]
            ident = frozenset(parts.identifiers)
            clusters[ident] = (
                parts.identifiers,
                parts.ties,
                parts.customers,
                parts.over,
                parts.blocked,
                counts,
            )
            for identifier in ident:
                assert _text(client.get(keys.identity(identifier)) or b"") == n[3:], identifier
    found["clusters"] = clusters
    found["families"] = sorted({re.sub(r"^cl:[^:]+", "cl:*", n) for n in names})
    return found


def test_an_upgraded_store_holds_what_a_fresh_one_does(
    client: redis.Redis, redis_url: str, document: dict[str, Any]
) -> None:
    upgraded, outcomes, told, after = run(client, redis_url, document, upgraded=True)
    fresh, expected, fresh_told, fresh_after = run(client, redis_url, document, upgraded=False)
    keys = upgraded.keys
    replays, new, erased, again = outcomes
    assert not any(replays) and not any(erased), "an old event counted twice"
    assert again == [True]
    assert all(new[:-2]) and not any(new[-2:])
    assert outcomes == expected

    assert [n for n in _names(client, keys) if OLD_KEYS.fullmatch(n)] == []
    got, want = state(client, keys), state(client, fresh.keys)
    for part in want:  # part by part: a readable failure
        assert got[part] == want[part], part
    dee = next(c for c in document["keys"] if c.startswith("cust:cus_cf"))[5:]
    assert dee not in got["profiles"] and "user_id:dee" not in str(got["clusters"])
    decoded = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert leftovers(decoded, keys.prefix, [*DEE, dee]) == []
    finally:
        decoded.close()

    # stage changes: the old code's as it announced them; then each later one once, and
    # none of those already told again
    assert told == fresh_told
    assert after and Counter(after) == Counter(fresh_after)
    assert len(set(after)) == len(after)
    assert not {_entry(c) for c in after} & {_entry(c) for c in told}


def _entry(change: bytes) -> tuple[str, str, Any]:
    """What a stage change or firing tells: nothing is told twice."""
    found = orjson.loads(change)
    if "firing_id" in found:
        return found["customer_id"], found["kind"], found["firing_id"]
    return found["customer_id"], found["to"], found["at_ms"]


def test_an_upgraded_store_is_re_evaluated_as_a_fresh_one(
    client: redis.Redis, redis_url: str, document: dict[str, Any]
) -> None:
    """Then the rules change: every anchor's candidates are rewritten from its timeline (old
    entries among them, in the form the old code wrote) under the new rules, alike."""
    stores = [run(client, redis_url, document, upgraded)[0] for upgraded in (True, False)]
    rewritten = []
    for store in stores:
        resolver = Resolver(store, OTHER, POLICY, unversioned=MODEL.version)
        clusters = [n[3:] for n in _names(client, store.keys) if re.fullmatch(r"cl:[^:]+", n)]
        resolver.resolve(clusters)
        rewritten.append(resolver.reevaluated)
    assert rewritten[0] == rewritten[1] > 0
    got, want = (state(client, store.keys, OTHER) for store in stores)
    for part in want:
        assert got[part] == want[part], part
    assert any(p["stage"] == "loyal" for p in got["profiles"].values())
    [eve] = [p for p in got["profiles"].values() if "user_id:eve" in p["identities"]]
    assert eve["stage"] == "interested"  # from the old code's timeline entries alone


def test_a_message_sent_again_after_the_window_moves_its_old_entry(
    client: redis.Redis, redis_url: str, document: dict[str, Any]
) -> None:
    """c1 (anonymous_id:dev-c), stored by the old code at T0, is sent again at T0 + 11 days
    (see :func:`_later`): a read of the timeline up to T0 + 1 day (the API's ``until``) or a
    re-evaluation must not find it at its old time any more."""
    timelines = []
    for upgraded in (True, False):
        store = run(client, redis_url, document, upgraded)[0]
        key = store.keys.anchor("anonymous_id:dev-c", "journey")
        found: Any = client.zrevrangebyscore(key, T0 + DAY, 0, withscores=True)
        entries = decode_journey(found)
        timelines.append([(e["id"], e["at"]) for e in entries])
    assert timelines[1] == []  # c2 came at T0 + 1 day + 7 ms
    assert timelines[0] == timelines[1]
