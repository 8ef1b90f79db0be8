"""The codecs of store/codecs.py: what each stores, decoded by name, the formats of older
versions too, and what is not a value of theirs."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from store.codecs import (
    StoredAnnounced,
    StoredFiring,
    StoredFunnelRow,
    decode_announced,
    decode_firing,
    decode_funnel_row,
    encode_announced,
    encode_firing,
    encode_funnel_row,
    seen_member,
)
from tests.unit.test_api_views import PROFILE
from touchpath.funnel_rows import funnel_row

stages = st.sampled_from(["awareness", "consideration", "purchase"])
rows = st.tuples(
    st.sampled_from(["ads", "web", None]),
    st.sampled_from(["spring", None]),
    st.dictionaries(stages, st.integers(0, 10**13)),
    st.dictionaries(st.sampled_from(["plan", "seats"]), st.sampled_from(["pro", 3, True])),
    st.floats(0, 10**6),
    st.integers(0, 10**13) | st.none(),
    st.dictionaries(stages, st.sampled_from(["web", "email"])),
    st.just({"active": 5}) | st.just({}),
).map(list)


def test_the_encoder_writes_the_entries_as_triples_timed_from_the_first_touch() -> None:
    persona = ("seats",)
    row = funnel_row(PROFILE, persona)
    entries = ["awareness", 0, "ads", "consideration", 1_000, "web", "purchase", 3_000, "web"]
    stored = orjson.loads(encode_funnel_row(PROFILE, persona))
    assert stored == [*row[:2], entries, *row[3:6], None, row[7]]
    without_first = {**PROFILE, "first_touch": {"channel": "ads"}}
    stored = orjson.loads(encode_funnel_row(without_first))
    absolute = ["awareness", 1_000, "ads", "consideration", 2_000, "web", "purchase", 4_000]
    assert stored[2] == [*absolute, "web"]
    assert decode_funnel_row(orjson.dumps(stored)) == decode_funnel_row(
        orjson.dumps(funnel_row(without_first))
    )


def test_rows_older_versions_wrote_decode_as_the_new_ones() -> None:
    old = orjson.dumps(funnel_row(PROFILE))  # {stage: ms} third, {stage: channel} seventh
    assert decode_funnel_row(old) == decode_funnel_row(encode_funnel_row(PROFILE))


@given(rows)
def test_every_row_round_trips(full: list[Any]) -> None:
    profile = {
        "first_touch": {"channel": full[0], "campaign": full[1], "at_ms": full[5]},
        "history": {s: [at, "m", full[6].get(s, "web")] for s, at in full[2].items()},
        "traits": full[3],
        "revenue": full[4],
    }
    row = decode_funnel_row(encode_funnel_row(profile))
    assert row is not None
    assert (row.channel, row.campaign, row.entered, row.first_ms) == (*full[:3], full[5])
    assert row.entered_by == {s: full[6].get(s, "web") for s in full[2]}
    assert (row.traits, row.revenue) == (full[3], full[4])


def test_a_profile_round_trips_by_name() -> None:
    row = decode_funnel_row(encode_funnel_row(PROFILE))
    assert row == StoredFunnelRow(
        channel="ads",
        campaign="spring",
        entered={"awareness": 1_000, "consideration": 2_000, "purchase": 4_000},
        traits={"plan": "pro", "beta": True, "seats": 3},
        revenue=120.5,
        first_ms=1_000,
        entered_by={"awareness": "ads", "consideration": "web", "purchase": "web"},
        lifecycle=funnel_row(PROFILE)[7],
    )


@given(rows, st.integers(4, 8))
def test_rows_of_every_version_decode_with_empty_values_for_what_they_lack(
    full: list[Any], size: int
) -> None:
    row = decode_funnel_row(orjson.dumps(full[:size]))
    assert row is not None
    assert (row.channel, row.campaign, row.entered, row.traits) == tuple(full[:4])
    assert row.revenue == (float(full[4]) if size > 4 else 0.0)
    assert row.first_ms == (full[5] if size > 5 else None)
    assert row.entered_by == (full[6] if size > 6 else {})
    assert row.lifecycle == (full[7] if size > 7 else {})


def test_what_is_not_a_row_decodes_to_none() -> None:
    for raw in (
        b"not json",
        b"{}",
        b"[1]",
        b'["web", null, []]',
        b'["web", null, 3, {}]',
        b'["web", null, ["awareness", 1], {}]',
        b'["web", null, [1, 1, "web"], {}]',
        b'["web", null, [["a"], 1, "web"], {}]',
    ):
        assert decode_funnel_row(raw) is None, raw
    odd_times = decode_funnel_row(b'["web", null, ["a", null, "web", "b", 2, 3], {}, 0, 10]')
    assert odd_times is not None
    assert (odd_times.entered, odd_times.entered_by) == ({"a": None, "b": 12}, {"a": "web", "b": 3})
    odd = decode_funnel_row(b'["web", null, {}, "x", true, 1.5, [], 2]')
    assert odd == StoredFunnelRow("web", None, {}, {}, 0.0, None, {}, {})


# What was announced (P:announced)

HISTORY_PROFILE: dict[str, Any] = {
    "id": "cus_1",
    "stage": "purchase",
    "history": {"awareness": [1_000, "m1", "web", 0], "purchase": [4_000, "m4", "email", 1]},
}
RECORD = {"awareness": [1_000, "m1", "web"], "purchase": [4_000, "m4", "email"]}


def test_the_short_form_stands_for_the_history_of_the_stored_profile() -> None:
    raw = encode_announced(RECORD, profile_stored=True)
    assert len(raw) == 9 and raw.startswith(b"=")
    assert decode_announced(raw, HISTORY_PROFILE) == StoredAnnounced(RECORD, True, True)
    assert decode_announced(raw.decode(), HISTORY_PROFILE) == StoredAnnounced(RECORD, True, True)


def test_a_short_form_without_its_profile_or_with_another_history_says_so() -> None:
    raw = encode_announced(RECORD, profile_stored=True)
    moved = {**HISTORY_PROFILE, "history": {"awareness": [999, "m0", "web", 0]}}
    assert decode_announced(raw, moved) == StoredAnnounced(
        {"awareness": [999, "m0", "web"]}, short=True, matches=False
    )
    assert decode_announced(raw, None) == StoredAnnounced({}, short=True, matches=False)
    assert decode_announced(b"=", HISTORY_PROFILE) == StoredAnnounced(RECORD, True, False)


def test_the_full_record_and_the_one_entry_form_of_older_stores_decode() -> None:
    full = encode_announced(RECORD, profile_stored=False)
    assert full == orjson.dumps(RECORD)  # what older versions wrote, byte for byte
    for profile in (HISTORY_PROFILE, None):
        assert decode_announced(full, profile) == StoredAnnounced(RECORD, short=False)
        entry = orjson.dumps(["purchase", 4_000, "m4"])
        assert decode_announced(entry, profile) == StoredAnnounced(["purchase", 4_000, "m4"], False)


def test_what_is_not_an_announced_record_decodes_to_none_or_loses_its_odd_entries() -> None:
    for raw in (None, b"", "", b"not json", b"3", b'"text"', b"[1, 2, 3]", b'["a", 1]', b"null"):
        assert decode_announced(raw, HISTORY_PROFILE) is None, raw
    odd = b'{"awareness": [1, "m1", "web"], "x": 3, "y": [1], "z": {"a": 1}}'
    assert decode_announced(odd, None) == StoredAnnounced({"awareness": [1, "m1", "web"]}, False)


@given(
    st.dictionaries(
        st.text(max_size=12),
        st.tuples(
            st.integers(-(2**62), 2**62), st.text(max_size=40), st.text(max_size=8) | st.none()
        ),
        max_size=6,
    )
)
def test_every_history_round_trips_through_both_forms(entries: dict[str, Any]) -> None:
    profile = {"history": {s: [*e, 0] for s, e in entries.items()}}
    record = {s: list(e) for s, e in entries.items()}
    short = decode_announced(encode_announced(record, profile_stored=True), profile)
    assert short == StoredAnnounced(record, True, True)
    full = decode_announced(encode_announced(record, profile_stored=False), None)
    assert full == StoredAnnounced(record, False, True)


# Fired trigger occurrences (P:trg:s:<customer id>)

ENTERED = {"at_ms": 5, "message_id": "m5", "channel": "web", "reason": "entered decision"}
LAST_EVENT = {"at_ms": 6, "message_id": "m6", "reason": "last event"}
SURVEY = {"at_ms": 7, "reason": "nps score 3"}


def test_a_firing_is_stored_by_position_and_decodes_by_name() -> None:
    raw = encode_firing(5, 7_200_005, [ENTERED])
    assert raw == b'[5,7200005,[5,"entered decision","m5","web"]]'
    assert decode_firing(raw) == StoredFiring(5, 7_200_005, [ENTERED])
    several = decode_firing(encode_firing(1, 2, [ENTERED, LAST_EVENT, SURVEY]))
    assert several == StoredFiring(1, 2, [ENTERED, LAST_EVENT, SURVEY])
    assert [list(c) for c in several.causes] == [list(ENTERED), list(LAST_EVENT), list(SURVEY)]


def test_a_cause_of_another_shape_is_kept_as_it_is() -> None:
    odd = [{"reason": "r", "at_ms": 1}, {"at_ms": 1, "reason": "r", "extra": True}, {}]
    assert decode_firing(encode_firing(1, 2, odd)) == StoredFiring(1, 2, odd)


def test_firings_older_versions_stored_decode() -> None:
    old = orjson.dumps({"since_ms": 5, "at_ms": 9, "causes": [ENTERED, SURVEY]})
    assert decode_firing(old) == StoredFiring(5, 9, [ENTERED, SURVEY])
    assert decode_firing(b'{"since_ms": 5, "at_ms": 9}') == StoredFiring(5, 9, [])
    assert decode_firing(b'{"since_ms": 5, "at_ms": 9, "causes": 3}') == StoredFiring(5, 9, [])


def test_what_is_not_a_firing_decodes_to_none_or_loses_its_odd_causes() -> None:
    for raw in (b"", b"not json", b"3", b"[1]", b'["1", 2]', b"[1, 2.5]", b"[true, 2]", b"{}"):
        assert decode_firing(raw) is None, raw
    odd = b'[1, 2, 3, "x", [1], [1, "r", "m", "c", "more"], [1, "r"]]'
    assert decode_firing(odd) == StoredFiring(1, 2, [{"at_ms": 1, "reason": "r"}])


ms = st.integers(-(2**62), 2**62)
causes = st.one_of(
    st.fixed_dictionaries({"at_ms": ms, "reason": st.text()}),
    st.fixed_dictionaries({"at_ms": ms, "message_id": st.text(), "reason": st.text()}),
    st.fixed_dictionaries(
        {
            "at_ms": ms,
            "message_id": st.text() | st.none(),
            "channel": st.text() | st.none(),
            "reason": st.text(),
        }
    ),
    st.dictionaries(st.text(max_size=5), ms | st.text(), max_size=4),
)


@given(ms, ms, st.lists(causes, max_size=4))
def test_every_firing_round_trips(since: int, due: int, found: list[dict[str, Any]]) -> None:
    assert decode_firing(encode_firing(since, due, found)) == StoredFiring(since, due, found)


message_ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200)


@given(message_ids)
def test_a_seen_member_is_12_bytes_told_from_any_message_id(message_id: str) -> None:
    """Whatever the messageId: 0xff (which its UTF-8 never holds), then 88 bits of SHA-1."""
    member = seen_member(message_id)
    assert len(member) == 12 and member[0] == 0xFF
    assert not message_id.encode().startswith(b"\xff")
    assert member[1:] == hashlib.sha1(message_id.encode()).digest()[:11]


def test_seen_members_of_distinct_message_ids_differ() -> None:
    ids = [f"m-{n}" for n in range(10_000)] + ["caf\u00e9", "cafe\u0301", "x" * 200]
    assert len({seen_member(m) for m in ids}) == len(ids)
