"""The profile's codec (``P:cust``): the compact form decodes to exactly the derived profile,
profiles stored in the full JSON of earlier versions still decode, and the fields the Lua
scripts read keep their names."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.codecs import PROFILE_FIELDS, decode_profile, encode_profile
from tests.reference import ReferenceStore, make_event
from tests.unit.test_cycles import POPULATION, day
from tests.unit.test_processing_invariants import MODEL, TRAIT_MODEL, events

#: The issue's typical profile (#20), as derived.
TYPICAL: dict[str, Any] = orjson.loads(
    b'{"id":"cus_a65fa6765b5f0e01483b","identities":["user_id:user-1031","email:person1031@exam'
    b'ple.com","anonymous_id:anon-1031-0-ae608be7"],"stage":"decision","history":{"awareness":'
    b'[1769200278431,"b5b38e020c2d440a9d15eb9c3e942a8f","web",{"type":"page","event":null,"rule'
    b'":0}],"consideration":[1769200278431,"b5b38e020c2d440a9d15eb9c3e942a8f","web",{"type":"pa'
    b'ge","event":null,"rule":4}],"decision":[1769203677756,"2378c14c49d24f83a53ffb4265b2c4bb",'
    b'"web",{"type":"track","event":"Product Added","rule":5}]},"first_touch":{"at_ms":17692002'
    b'78431,"channel":"web","campaign":null},"traits":{"email":"person1031@example.com","plan":'
    b'"pro"},"accounts":{},"surveys":[],"orders":0,"revenue":0.0,"refused_ties":[],"cycle":{"nu'
    b'mber":1,"state":"first","since":1769200278431},"cycles":[{"number":1,"kind":"first","sinc'
    b'e":1769200278431,"purchases":0,"lapsed_at":null,"stages":{"awareness":1769200278431,"cons'
    b'ideration":1769200278431,"decision":1769203677756}}],"last_active":1769213305955,"rules_v'
    b'ersion":"d6468580ce71"}'
)


def track(user: str, mid: str, at: int, name: str, **fields: Any) -> dict[str, Any]:
    return make_event("track", mid, at, userId=user, event=name, **fields)


#: Beyond the lifecycle population (several cycles, lapses, win-backs, repeat purchases):
#: survey answers, accounts, a refused tie (two userIds on one device), a UTM campaign.
MORE = [
    track("sue", "s1", day(0), "NPS Survey Answered", properties={"score": 9}),
    track("sue", "s2", day(1), "CSAT Survey Answered", properties={"score": 2}),
    make_event("group", "g1", day(0), userId="gus", groupId="acme", traits={"seats": 5}),
    make_event("group", "g2", day(1), userId="gus", groupId="initech"),
    make_event("page", "d1", day(0), userId="alice", anonymousId="dev"),
    make_event("page", "d2", day(1), userId="bob", anonymousId="dev"),
    make_event(
        "page",
        "u1",
        day(0),
        userId="uma",
        context={"channel": "web", "campaign": {"name": "spring", "source": "ads"}},
    ),
]


def derived(stream: list[dict[str, Any]], model: Any = MODEL) -> list[dict[str, Any]]:
    store = ReferenceStore(model)
    store.apply_batch(stream)
    return list(store.profiles.values())


def assert_round_trip(profile: dict[str, Any]) -> bytes:
    """Both forms decode to the very profile (same JSON: key order and number types too)."""
    stored = encode_profile(profile)
    for raw in (stored, orjson.dumps(profile)):  # compact / as earlier versions stored it
        back = decode_profile(raw)
        assert back == profile
        assert orjson.dumps(back) == orjson.dumps(profile)
    return stored


def test_real_profiles_round_trip_and_shrink() -> None:
    profiles = derived(POPULATION + MORE)
    covered = {
        "several cycles": any(len(p["cycles"]) > 1 for p in profiles),
        "a lapse": any(c["lapsed_at"] for p in profiles for c in p["cycles"]),
        "purchases": any(p["orders"] and p["revenue"] == 0.0 for p in profiles),
        "surveys": any(p["surveys"] for p in profiles),
        "accounts": any(p["accounts"] for p in profiles),
        "refused ties": any(p["refused_ties"] for p in profiles),
        "a campaign": any((p["first_touch"] or {}).get("campaign") for p in profiles),
    }
    assert all(covered.values()), covered
    for profile in profiles:
        assert tuple(profile) == PROFILE_FIELDS
        stored = assert_round_trip(profile)
        assert b'"rv"' in stored and len(stored) < len(orjson.dumps(profile))


@pytest.mark.parametrize("model", [MODEL, TRAIT_MODEL])
def test_what_derived_profiles_repeat_is_left_out(model: Any) -> None:
    """The current cycle, the first cycle's stages and the first touch's time are derived on
    read; empty and zero fields are not stored."""
    for profile in derived(POPULATION + MORE, model):
        stored = orjson.loads(encode_profile(profile))
        assert "c" not in stored
        assert len(stored["cy"][0]) == (5 if stored["cy"][0][4:] else 4)
        assert len(stored["ft"]) <= 2
        for key in ("accounts", "sv", "o", "r", "rt", "t"):
            assert stored.get(key, "absent") not in ({}, [], 0, None), key


def test_the_typical_profile_is_at_least_30_percent_smaller() -> None:
    stored = assert_round_trip(TYPICAL)
    assert len(stored) <= 0.7 * len(orjson.dumps(TYPICAL)), stored


def test_the_fields_the_lua_scripts_read_keep_their_names() -> None:
    """erase.lua reads ``identities``, remove_customer.lua ``stage`` and the keys of
    ``history`` and ``accounts`` (an absent table is an empty one there)."""
    for profile in [*derived(POPULATION + MORE), TYPICAL]:
        stored = orjson.loads(encode_profile(profile))
        assert stored["identities"] == profile["identities"]
        assert stored.get("stage") == profile["stage"]
        assert list(stored["history"]) == list(profile["history"])
        assert list(stored.get("accounts", {})) == list(profile["accounts"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.sampled_from([MODEL, TRAIT_MODEL]))
def test_profiles_derived_from_any_events_round_trip(
    stream: list[dict[str, Any]], model: Any
) -> None:
    for profile in derived(stream, model):
        assert_round_trip(profile)


times = st.integers(0, 2 * 10**12)
maybe = st.none() | times
stage_names = st.sampled_from(["awareness", "decision", "purchase"])
causes = st.fixed_dictionaries(
    {"type": st.sampled_from(["page", "track"]), "event": st.none() | st.text(max_size=3)}
).map(lambda c: {**c, "rule": 3})
entries = st.tuples(times, st.text(max_size=4), st.sampled_from(["web", "email"])).map(list)
entries = entries | st.tuples(entries, causes).map(lambda e: [*e[0], e[1]])
cycles = st.fixed_dictionaries(
    {
        "number": st.integers(1, 60),
        "kind": st.sampled_from(["first", "repeat", "won_back"]),
        "since": times,
        "purchases": st.integers(0, 2),
        "lapsed_at": maybe,
        "stages": st.dictionaries(stage_names, times),
    }
)
zero = st.sampled_from([0, 0.0, -0.0, False, None, 1, 2.5])
#: Profile-shaped values off the derived path too: numbers of other types, a current cycle that
#: is not the last one's, a first touch before the first cycle, stages not the history's.
profiles = st.fixed_dictionaries(
    {
        "id": st.text(max_size=4),
        "identities": st.lists(st.text(max_size=4), max_size=2),
        "stage": st.none() | stage_names,
        "history": st.dictionaries(stage_names, entries),
        "first_touch": st.none()
        | st.fixed_dictionaries(
            {"at_ms": maybe, "channel": st.text(max_size=3), "campaign": st.none() | st.text()}
        ),
        "traits": st.dictionaries(st.text(max_size=3), st.integers(-5, 5)),
        "accounts": st.just({}) | st.just({"g": {"traits": {}, "updated": "x"}}),
        "surveys": st.just([]) | st.just([["nps", 9, 5, "awareness"]]),
        "orders": zero,
        "revenue": zero,
        "refused_ties": st.just([]) | st.just([{"identifiers": ["a", "b"], "reason": "r"}]),
        "cycle": st.none() | st.fixed_dictionaries({"number": st.integers(1, 3)}),
        "cycles": st.lists(cycles, max_size=3),
        "last_active": zero,
        "rules_version": st.just("v1"),
    }
)


def consistent(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile with what the derivation makes consistent: the first cycle's stages are
    its history times, the first touch its start, the current cycle the last one's."""
    cycles = profile["cycles"]
    if not cycles:
        return profile
    end = cycles[1]["since"] if len(cycles) > 1 else 1 << 62
    first = {**cycles[0], "stages": {s: e[0] for s, e in profile["history"].items() if e[0] < end}}
    last = cycles[-1] if len(cycles) > 1 else first
    lapsed = last["lapsed_at"]
    cycle = {
        "number": last["number"],
        "state": "lapsed" if lapsed is not None else last["kind"],
        "since": lapsed if lapsed is not None else last["since"],
    }
    touch = profile["first_touch"] and {**profile["first_touch"], "at_ms": first["since"]}
    return {
        **profile,
        "first_touch": touch,
        "cycle": cycle,
        "cycles": [first, *cycles[1:]],
    }


@given(profiles, st.booleans())
def test_profile_shaped_values_round_trip(profile: dict[str, Any], derivable: bool) -> None:
    assert_round_trip(consistent(profile) if derivable else profile)


@given(profiles, st.data())
def test_other_shapes_are_stored_in_full(profile: dict[str, Any], data: st.DataObject) -> None:
    """A field missing, one more, another order or an entry of another shape: the full JSON,
    decoded as it is."""
    gone = data.draw(st.sampled_from(PROFILE_FIELDS))
    changes = {
        "missing": lambda p: {k: v for k, v in p.items() if k != gone},
        "more": lambda p: {**p, "extra": 1},
        "order": lambda p: dict(reversed(p.items())),
        "entry": lambda p: {**p, "history": {"awareness": [1, "m", "web", {"rule": 1}]}},
        "cycle": lambda p: {**p, "cycles": [{"number": 1}]},
        "rules": lambda p: {**p, "rules_version": None},
    }
    changed = changes[data.draw(st.sampled_from(sorted(changes)))](profile)
    stored = encode_profile(changed)
    assert stored == orjson.dumps(changed)
    assert decode_profile(stored) == changed


def test_a_full_profile_holding_the_compact_mark_is_refused() -> None:
    with pytest.raises(ValueError, match="rv"):
        encode_profile({"id": "c1", "rv": "x"})
