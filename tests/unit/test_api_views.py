"""Answers built from stored profiles and rows; time parsing."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import views
from api.rows import NEVER, RowCache, effective_times, parse_row
from api.timeparse import FIRST_MS, FOREVER_MS, duration_ms, iso, to_ms
from infra.problems import Problem
from touchpath.funnel_rows import funnel_row
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
STAGES = MODEL.stages
PROFILE = {
    "id": "cus_1",
    "identities": ["user_id:ada", "email:ada@example.com", "ext:intercom_user:42"],
    "stage": "purchase",
    "history": {
        "awareness": [1_000, "a1", "ads"],
        "consideration": [2_000, "a2", "web"],
        "purchase": [4_000, "a4", "web", {"type": "track", "event": "Order Completed", "rule": 7}],
    },
    "first_touch": {"at_ms": 1_000, "channel": "ads", "campaign": "spring"},
    "traits": {"plan": "pro", "beta": True, "seats": 3},
    "orders": 1,
    "revenue": 120.5,
    "refused_ties": [],
}


def test_stage_view_names_the_previous_stage_and_the_cause() -> None:
    answer = views.stage_view(PROFILE, MODEL)
    assert answer["stage"] == "purchase"
    assert answer["previous_stage"] == "consideration"  # decision was skipped
    assert answer["entered_at"] == "1970-01-01T00:00:04.000Z"
    assert answer["caused_by"] == {
        "message_id": "a4",
        "at": "1970-01-01T00:00:04.000Z",
        "channel": "web",
        "type": "track",
        "event": "Order Completed",
        "rule": {
            "number": 7,
            "stage": "purchase",
            "when": {
                "type": "track",
                "event": ["Order Completed", "Subscription Started", "Trial Converted"],
            },
        },
    }


def test_an_entry_stored_before_causes_were_kept_names_its_event_only() -> None:
    profile = {**PROFILE, "history": {"awareness": [1_000, "a1", "ads"]}, "stage": "awareness"}
    cause = views.stage_view(profile, MODEL)["caused_by"]
    assert cause["message_id"] == "a1" and cause["type"] is None and cause["rule"] is None


def test_stage_view_as_of_a_past_time() -> None:
    assert views.stage_view(PROFILE, MODEL, as_of=2_500)["stage"] == "consideration"
    assert views.stage_view(PROFILE, MODEL, as_of=999)["stage"] is None
    assert views.stage_view({**PROFILE, "stage": None, "history": {}}, MODEL)["caused_by"] is None


def test_profile_view_splits_counters() -> None:
    counts = {"events": 5, "channel:web": 4, "channel:ads": 1, "type:page": 3, "type:track": 2}
    answer = views.profile_view(PROFILE, {**counts, "first": 1_000, "last": 4_000}, MODEL)
    assert answer["identities"][2] == {"type": "intercom_user", "value": "42"}
    assert answer["channels"] == {"web": 4, "ads": 1}
    assert answer["counts"] == {"events": 5, "by_type": {"page": 3, "track": 2}}
    assert [h["stage"] for h in answer["stage_history"]] == [
        "awareness",
        "consideration",
        "purchase",
    ]
    assert answer["first_touch"] == {"at": iso(1_000), "channel": "ads", "campaign": "spring"}
    assert answer["orders"] == 1 and answer["revenue"] == 120.5  # from the profile


def test_trait_filters_compare_json_spellings() -> None:
    assert views.has_traits(PROFILE, {"plan": ["pro"], "beta": ["true"], "seats": ["3"]})
    assert views.has_traits(PROFILE, {"plan": ["team", "pro"]})
    assert not views.has_traits(PROFILE, {"plan": ["Pro"]})
    assert not views.has_traits(PROFILE, {"missing": ["null"]})


def test_journey_entries_newest_first_once_per_message() -> None:
    raw = [{"id": "b", "at": 2}, {"id": "a", "at": 2}, {"id": "c", "at": 1}, {"id": "b", "at": 2}]
    assert [e["id"] for e in views.journey_entries(raw)] == ["b", "a", "c"]


@given(st.dictionaries(st.sampled_from(STAGES), st.integers(0, 10**13)))
def test_effective_times_never_decrease(times: dict[str, int]) -> None:
    found = effective_times(times, STAGES)
    assert list(found) == sorted(found)
    for stage, at in times.items():
        assert found[STAGES.index(stage)] <= at
    assert all(t == NEVER for t in found) == (not times)


def test_rows_decode_the_processor_format_once() -> None:
    raw = orjson.dumps(funnel_row(PROFILE))
    parsed = parse_row(raw, STAGES)
    assert parsed is not None
    assert parsed.channel == "ads" and parsed.campaign == "spring" and parsed.current == 3
    assert parsed.reached == (1_000, 2_000, 4_000, 4_000, NEVER)
    assert (parsed.first, parsed.last, parsed.revenue) == (1_000, 4_000, 120.5)
    assert parse_row(b"not json", STAGES) is None and parse_row(b"[1]", STAGES) is None
    cache = RowCache(STAGES)
    for expected in (1, 0):
        scan = cache.scan()
        assert scan.add([raw, b"{}"]) == [parsed]
        scan.finish()
        assert scan.decoded == expected * 2


def test_times() -> None:
    assert to_ms("2026-03-01T10:00:00Z", 0, "since") == 1_772_359_200_000
    assert to_ms("2026-03-01", 0, "since") == 1_772_323_200_000
    assert to_ms("1772359200000", 0, "since") == 1_772_359_200_000
    assert to_ms(None, 7, "since") == 7
    assert to_ms("0001-01-01T00:00:00+14:00", 0, "since") == FIRST_MS
    assert iso(10**20) == iso(FOREVER_MS) == "9999-12-31T23:59:59.999Z"
    assert duration_ms("7d", "x") == 7 * 86_400_000 and duration_ms("30m", "x") == 1_800_000
    for bad in ("yesterday", "2026-13-01"):
        with pytest.raises(Problem):
            to_ms(bad, 0, "since")
    with pytest.raises(Problem):
        duration_ms("7 days", "stalled_after")


@given(st.integers(FIRST_MS, FOREVER_MS))
def test_iso_round_trips(ms: int) -> None:
    assert to_ms(iso(ms), 0, "t") == ms
