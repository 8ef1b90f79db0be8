"""The real scripts against the pure reference, field by field.

``tests/reference.py`` says it folds "exactly as store/scripts/ingest.lua does"; this suite holds
it to that. Random event sets (several identifiers per person, identify/alias ties and ties
across people, duplicates, out-of-order and same-millisecond timestamps, stage-relevant and
gated events, traits, accounts, surveys, revenue) go, in the same batches, through
``JourneyStore.apply`` and the ``Resolver`` (the real Lua scripts on a real Redis) and through
``ReferenceStore``; then every stored structure is compared with what the reference holds:
each anchor's hash, timeline, de-duplication set and gated candidates, each raw cluster's
identifiers and ties, the look-ups, the profiles and every index derived from them, and the
stage changes announced. Nothing else may be left under the prefix.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.resolver import Resolver
from processor.store import JourneyStore
from store.codecs import decode_announced, decode_cluster, decode_funnel_row, decode_profile
from store.keys import Keys
from tests.reference import ReferenceStore, make_event
from tests.unit.test_processing_invariants import TRAIT_MODEL
from tests.unit.test_reevaluation import OTHER
from touchpath.effects import effects_of
from touchpath.events import event_millis
from touchpath.funnel_rows import funnel_row
from touchpath.identity import TIE_SEPARATOR, IdentityPolicy
from touchpath.stages import StageModel, load_stage_model

POLICY = IdentityPolicy()
T0 = 1_700_000_000_000
MINUTE = 60_000
PEOPLE = 3
NAMES = [
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Order Completed",
    "Subscription Started",
    "Support Ticket Created",
    "Email Link Clicked",
    "Email Opened",
    "NPS Survey Answered",
    "CSAT Survey Answered",
    "Something Else",
]
PATHS = ["/", "/pricing", "/product/1", "/cart", "/checkout", "/account", "/help"]
CHANNELS = ["web", "web", "email", "ads", "app"]


def person_ids(p: int) -> dict[str, list[str]]:
    """A person's identifiers: one userId (and a former one), two devices, an email, a phone."""
    return {
        "user": [f"u{p}"],
        "former": [f"old-u{p}"],
        "device": [f"d{p}a", f"d{p}b"],
        "email": [f"p{p}@x.io", f"P{p}@X.io "],  # the same email, as typed
        "phone": [f"+44 20 7946 01{p}{p}"],
    }


@st.composite
def one_event(draw: st.DrawFn, index: int, previous_ms: int) -> dict[str, Any]:
    """One normalised event of a random call type about a random person, sometimes carrying
    another person's identifier (a tie the identity limits may refuse)."""
    kind = draw(st.sampled_from(["page", "screen", "track", "track", "identify", "alias", "group"]))
    me = person_ids(draw(st.sampled_from([0, 0, *range(PEOPLE)])))  # one busier than the rest
    other = person_ids(draw(st.integers(0, PEOPLE - 1)))
    someone = other if draw(st.integers(0, 6)) == 0 else me
    fields: dict[str, Any] = {
        "trust": draw(st.sampled_from(["server", "server", "browser"])),
        "channel": draw(st.sampled_from(CHANNELS)),
    }
    if kind == "alias":
        fields["userId"] = someone["user"][0]
        fields["previousId"] = draw(st.sampled_from(me["former"] + me["device"]))
    else:
        if draw(st.booleans()):
            fields["userId"] = someone["user"][0]
        if draw(st.integers(0, 3)) or "userId" not in fields:
            fields["anonymousId"] = draw(st.sampled_from(me["device"]))
    traits: dict[str, Any] = {}
    if kind == "identify" or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            traits["email"] = draw(st.sampled_from(someone["email"]))
        if draw(st.integers(0, 3)) == 0:
            traits["phone"] = me["phone"][0]
        if draw(st.booleans()):
            traits["plan"] = draw(st.sampled_from(["free", "pro"]))
        if draw(st.booleans()):
            traits["name"] = draw(st.sampled_from(["Ada", "Zoë", {"first": "Ada"}, 7]))
        if draw(st.integers(0, 5)) == 0:
            traits["größe"] = draw(st.sampled_from(["L", "XL", None]))
    if kind == "identify":
        fields["traits"] = traits
    elif traits:
        fields["context_traits"] = traits
    if kind == "group":
        fields["groupId"] = draw(st.sampled_from(["g0", "g1"]))
        fields["traits"] = {"plan": draw(st.sampled_from(["team", "enterprise"])), "seats": 3}
    if kind == "track":
        name = draw(st.sampled_from(NAMES))
        fields["event"] = name
        properties: dict[str, Any] = {}
        if name in ("Order Completed", "Subscription Started"):
            revenue = draw(st.sampled_from([None, 0, 19.99, 5, 120.5, 0.1, "12"]))
            if revenue is not None:
                properties["revenue"] = revenue
        if name == "NPS Survey Answered":
            properties["score"] = draw(st.integers(0, 10))
        if name == "CSAT Survey Answered":
            properties["score"] = draw(st.integers(1, 5))
        if name.startswith("Email") and draw(st.booleans()):
            properties["email"] = draw(st.sampled_from(someone["email"]))
        if properties:
            fields["properties"] = properties
    if kind in ("page", "screen"):
        fields["name"] = draw(st.sampled_from(["Home", "Pricing"]))
        fields["properties"] = {"path": draw(st.sampled_from(PATHS))}
    if draw(st.integers(0, 3)) == 0:
        at_ms = previous_ms  # the same millisecond as the event before
    else:  # three days, in any order
        at_ms = T0 + draw(st.integers(0, 3 * 24 * 60)) * MINUTE + draw(st.integers(0, 999))
    campaign = draw(st.sampled_from([None, None, "spring", "retarget"]))
    context_traits = fields.pop("context_traits", None)
    message_id = draw(st.sampled_from([f"m{index}", f"M-{index}", f"{uuid.UUID(int=index)}"]))
    event = make_event(kind, message_id, at_ms, **fields)
    if context_traits:
        event["context"]["traits"] = context_traits
    if campaign:
        event["context"]["campaign"] = {"name": campaign, "source": "news"}
    return event


@st.composite
def event_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 30))
    found: list[dict[str, Any]] = []
    previous = T0
    for index in range(count):
        event = draw(one_event(index, previous))
        found.append(event)
        previous = event_millis(event)
    return found


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """An event set, some events delivered again, shuffled, cut into batches."""
    base = draw(event_sets())
    extra = draw(st.lists(st.sampled_from(base), max_size=len(base)))
    stream = draw(st.permutations(base + extra))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=3)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# --- reading back what the scripts stored -------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in client.hgetall(key).items()}


def _zset(client: redis.Redis, key: str) -> dict[str, float]:
    return {_text(m): s for m, s in client.zrange(key, 0, -1, withscores=True)}


def _json(value: Any) -> Any:
    """As stored: through JSON (tuples become lists)."""
    return orjson.loads(orjson.dumps(value))


def _numeric_revenue(fields: dict[str, str]) -> dict[str, Any]:
    """``c:revenue`` as a number: HINCRBYFLOAT prints ``10``, Python ``10.0`` (absent is 0:
    the script adds nothing for a group whose revenues sum to 0)."""
    found: dict[str, Any] = dict(fields)
    revenue = float(found.pop("c:revenue", 0.0))
    found["c:revenue"] = round(revenue, 6)
    return found


KNOWN_KEYS = re.compile(
    r"a:.+:(data|journey|seen|cond|buys)|id:.+|cl:[^:]+|cust:.+|idc:.+"
    r"|former:.+|stage:.+|reached:.+|funnel|surveys|announced|outbox|wh:outbox|wh:subs"
    r"|live:stage-changes|acct:.+:members|accounts|seq|erasure-key"
)


def _under(client: redis.Redis, keys: Keys, pattern: str) -> Iterator[str]:
    start = len(keys.prefix) + 1
    for key in client.scan_iter(f"{keys.prefix}:{pattern}", count=1000):
        yield _text(key)[start:]


def _clusters(client: redis.Redis, keys: Keys) -> dict[str, tuple[dict, dict]]:
    """Each raw cluster: its identifiers (first seen) and ties (earliest order); its counts
    equal what it holds."""
    found = {}
    for name in _under(client, keys, "cl:*"):
        cluster = name.split(":")[1]
        fields = _hash(client, keys.cluster(cluster))
        stored = decode_cluster(fields)
        counts = [int(fields.get(count, 0)) for count in ("ni", "nt", "no")]
        assert counts == [len(stored.identifiers), len(stored.ties), len(stored.over)], cluster
        found[cluster] = (stored.identifiers, stored.ties)
    return found


def _reference_clusters(reference: ReferenceStore) -> dict[frozenset[str], tuple[dict, dict]]:
    found = {}
    for component in reference._components():
        ids = {k: reference.first_seen[k] for k in component}
        ties = {t: o for t, o in reference.ties.items() if t.split(TIE_SEPARATOR)[0] in component}
        found[frozenset(component)] = (ids, ties)
    return found


def assert_same_state(client: redis.Redis, keys: Keys, reference: ReferenceStore) -> None:
    """Every structure the scripts stored equals the reference's, field by field."""
    # anchors: hash (active days included), timeline, de-duplication set, gated candidates,
    # purchases
    anchors = {name[2:].rsplit(":", 1)[0] for name in _under(client, keys, "a:*:data")}
    assert anchors == set(reference.anchors)
    for anchor in sorted(anchors):
        stored = _hash(client, keys.anchor(anchor, "data"))
        expected = reference.anchor_fields(anchor)
        assert _numeric_revenue(stored) == _numeric_revenue(expected), anchor
        journey = _zset(client, keys.anchor(anchor, "journey"))
        expected_journey = reference.journeys[anchor]
        assert journey == {e.decode(): float(at) for e, at in expected_journey.items()}, anchor
        seen = dict(client.zrange(keys.anchor(anchor, "seen"), 0, -1, withscores=True))
        assert seen == {m: float(r) for (a, m), r in reference.seen.items() if a == anchor}
        cond = _zset(client, keys.anchor(anchor, "cond"))
        assert cond == {m: float(at) for m, at in reference.anchors[anchor].conditional}
        data = reference.anchors[anchor]  # the lifecycle: purchase times (days: in the hash)
        buys = _zset(client, keys.anchor(anchor, "buys"))
        assert sorted(buys.values()) == sorted(float(at) for at in data.purchases), anchor
    # raw clusters: the same partition of identifiers, the same first-seen and tie orders
    clusters = _clusters(client, keys)
    by_members = {frozenset(ids): (cluster, ids, ties) for cluster, (ids, ties) in clusters.items()}
    assert len(by_members) == len(clusters), "an identifier is in two raw clusters"
    expected_clusters = _reference_clusters(reference)
    assert set(by_members) == set(expected_clusters)
    for members, (cluster, ids, ties) in by_members.items():
        assert (ids, ties) == expected_clusters[members]
        for identifier in members:
            assert _text(client.get(keys.identity(identifier)) or b"") == cluster, identifier
        stored = decode_cluster(_hash(client, keys.cluster(cluster)))
        assert stored.version > 0
        assert set(stored.customers) == {  # each profile stored once (P:cust, compared below)
            cid for cid, p in reference.profiles.items() if members >= set(p["identities"])
        }
    # derived: profiles and every index derived from them
    profiles = {
        name[5:]: decode_profile(client.get(keys.customer(name[5:])) or b"null")
        for name in _under(client, keys, "cust:*")
    }
    expected = {cid: _json(p) for cid, p in reference.profiles.items()}
    assert set(profiles) == set(expected)
    for cid, profile in profiles.items():
        for name, value in expected[cid].items():  # field by field: a readable failure
            assert profile[name] == value, (cid, name)
        assert profile == expected[cid]
    assert_indexes(client, keys, reference)
    for name in _under(client, keys, "*"):
        assert KNOWN_KEYS.fullmatch(name), f"unexpected key {name}"
    live = set(clusters)
    for name in _under(client, keys, "cl:*"):
        assert name.split(":")[1] in live, f"{name}: left over from a merge"


def assert_indexes(client: redis.Redis, keys: Keys, reference: ReferenceStore) -> None:
    """Look-ups, stage indexes, funnel rows, survey answers, accounts, announced records."""
    profiles = reference.profiles
    for cid, profile in profiles.items():
        for identifier in profile["identities"]:
            assert _text(client.get(keys.customer_of(identifier)) or b"") == cid
    model = reference.model
    for stage in model.stages:
        current = {
            c: float(p["history"][stage][0]) for c, p in profiles.items() if p["stage"] == stage
        }
        assert _zset(client, keys.stage(stage)) == current, stage
        reached = {
            c: float(p["history"][stage][0]) for c, p in profiles.items() if stage in p["history"]
        }
        assert _zset(client, keys.reached(stage)) == reached, stage
    funnel = {c: decode_funnel_row(v) for c, v in _hash(client, keys.funnel).items()}
    # as the row the reference builds reads (stored in the form of store/codecs.py)
    assert funnel == {
        c: decode_funnel_row(orjson.dumps(funnel_row(p))) for c, p in profiles.items()
    }
    surveys = {c: orjson.loads(v) for c, v in _hash(client, keys.surveys).items()}
    assert surveys == {c: _json(p["surveys"]) for c, p in profiles.items() if p["surveys"]}
    announced = {}
    for cid, raw in _hash(client, keys.announced).items():
        stored = decode_announced(raw, _json(profiles[cid]) if cid in profiles else None)
        assert stored is not None and stored.matches, cid
        # the short form while the profile is stored, the record itself once it is gone
        assert stored.short == (cid in profiles), cid
        announced[cid] = stored.record
    assert announced == _json(reference.announced)
    members: dict[str, set[str]] = {}
    for cid, profile in profiles.items():
        for group_id in profile["accounts"]:
            members.setdefault(group_id, set()).add(cid)
    for group_id in {_text(g) for g in client.zrange(keys.accounts, 0, -1)} | set(members):
        stored = {_text(m) for m in client.smembers(keys.account_members(group_id))}
        assert stored == members.get(group_id, set()), group_id


def announcements(client: redis.Redis, stream: str) -> Counter[bytes]:
    return Counter(
        orjson.dumps(orjson.loads(f[b"change"]), option=orjson.OPT_SORT_KEYS)
        for _, f in client.xrange(stream)
    )


def run_both(
    client: redis.Redis, batches: list[list[dict[str, Any]]], model: StageModel
) -> tuple[Keys, ReferenceStore]:
    """The batches through the real store and resolver, and through the reference."""
    store = JourneyStore(client, f"diff{uuid.uuid4().hex[:8]}")
    client.hset(store.keys.webhooks("subs"), "sub", "{}")  # the webhook outbox is written
    resolver = Resolver(store, model, POLICY, chunk=2)  # several pipelined chunks
    reference = ReferenceStore(model, POLICY)
    for batch in batches:
        applied = store.apply([effects_of(e, model, POLICY) for e in batch], chunk=3).applied
        resolver.resolve(a.cluster for a in applied if a.needs_resolution)
        reference.apply_batch(batch)
    return store.keys, reference


def drop(client: redis.Redis, keys: Keys) -> None:
    names = list(client.scan_iter(f"{keys.prefix}:*", count=1000))
    for start in range(0, len(names), 500):
        client.delete(*names[start : start + 500])


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


COMMON = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("model", [load_stage_model(), TRAIT_MODEL], ids=["default", "traits"])
@COMMON
@given(batches=deliveries())
def test_the_scripts_store_what_the_reference_folds(
    client: redis.Redis, model: StageModel, batches: list[list[dict[str, Any]]]
) -> None:
    keys, reference = run_both(client, batches, model)
    try:
        assert_same_state(client, keys, reference)
        told = announcements(client, keys.outbox)
        assert told == Counter(
            orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for c in reference.announcements
        )
        assert announcements(client, keys.webhook_outbox) == told
        assert announcements(client, keys.live_changes) == told
    finally:
        drop(client, keys)


def test_revenue_is_compared_as_a_number() -> None:
    assert _numeric_revenue({"c:revenue": "10"}) == _numeric_revenue({"c:revenue": "10.0"})
    assert _numeric_revenue({}) == _numeric_revenue({"c:revenue": "0.0"})
    assert not math.isclose(
        _numeric_revenue({"c:revenue": "10"})["c:revenue"],
        _numeric_revenue({"c:revenue": "10.5"})["c:revenue"],
    )


@COMMON
@given(batches=deliveries())
def test_the_scripts_re_evaluate_as_the_reference_does(
    client: redis.Redis, batches: list[list[dict[str, Any]]]
) -> None:
    """Stored under one rules file, then re-evaluated under another through the real
    reevaluate.lua (on demand, by the resolver): the customers equal the reference's, which
    equal a store that always had the new rules (tests/unit/test_reevaluation.py)."""
    keys, reference = run_both(client, batches, TRAIT_MODEL)
    try:
        store = JourneyStore(client, keys.prefix)
        resolver = Resolver(store, OTHER, POLICY, chunk=2, unversioned=TRAIT_MODEL.version)
        clusters = [name.split(":")[-1] for name in _under(client, keys, "cl:*")]
        resolver.resolve(clusters)
        reference.reevaluate(OTHER)
        names = [f"{keys.prefix}:{name}" for name in _under(client, keys, "cust:*")]
        stored = [decode_profile(client.get(name) or b"null") for name in names]
        assert _customers(stored) == _customers(list(reference.profiles.values()))
        assert resolver.reevaluated == len(reference.anchors)
    finally:
        drop(client, keys)


def _customers(profiles: list[dict[str, Any]]) -> dict[frozenset[str], tuple[Any, ...]]:
    return {
        frozenset(p["identities"]): (
            p["stage"],
            orjson.dumps(p["history"]),
            orjson.dumps(p["cycles"]),
            p["orders"],
            round(p["revenue"], 6),
        )
        for p in profiles
    }
