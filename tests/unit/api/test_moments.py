"""The journey map's moments, pure: persona selection, drop-off, persona values, firing
counts per day, and the funnel row's persona traits."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from api.flows import FIRST_TOUCH, flows
from api.funnel import funnel
from api.moments import DropOff, Personas, days_between, firing_counts
from api.rows import FunnelRow, parse_row
from api.selection import Selection
from store.codecs import StoredFunnelRow, decode_funnel_row
from touchpath.funnel_rows import short_traits

STAGES = ("awareness", "consideration", "decision", "purchase")


def stored(
    times: dict[str, int], channel: str = "web", campaign: str | None = None, **traits: Any
) -> list[Any]:
    return [channel, campaign, times, traits, 0.0, None, {s: "email" for s in times}]


def as_stored(*raws: list[Any]) -> list[StoredFunnelRow]:
    """Rows as the API reads them from the store."""
    rows = [decode_funnel_row(orjson.dumps(raw)) for raw in raws]
    return [row for row in rows if row is not None]


def decoded(raw: list[Any]) -> FunnelRow:
    row = parse_row(orjson.dumps(raw), STAGES)
    assert row is not None
    return row


ADA = stored({"awareness": 1, "decision": 5}, "ads", "spring", plan="pro", country="DE")
BOB = stored({"awareness": 2, "consideration": 3}, "ads", None, plan="free", country="DE")
CY = stored({"awareness": 4}, "email", "spring", plan=True)
OLD = stored({"awareness": -10, "consideration": 30}, "email", "winter", plan="pro")


def test_a_persona_selects_by_trait_value_with_json_spellings() -> None:
    rows = [decoded(r) for r in (ADA, BOB, CY, OLD)]
    pro = Selection(traits={"plan": ["pro"]})
    assert [r.channel for r in pro.rows(rows)] == ["ads", "email"]
    assert len(Selection(traits={"plan": ["true"]}).rows(rows)) == 1  # a boolean trait
    assert len(Selection(traits={"plan": ["pro", "free"], "country": ["DE"]}).rows(rows)) == 2
    chosen = Selection("ads", "spring", {"country": ["DE"]}).stored(as_stored(ADA, BOB, CY))
    assert chosen == as_stored(ADA)
    no_traits = as_stored(["web", None, {}, None])
    assert Selection(traits={"plan": ["pro"]}).stored(no_traits) == []
    assert Selection().rows(rows) is rows


def test_drop_off_is_reached_minus_continued_per_channel_and_campaign() -> None:
    rows = [decoded(r) for r in (ADA, BOB, CY, OLD)]
    counter = DropOff(STAGES, 0, 100)
    counter.add(rows[:2])
    counter.add(rows[2:])
    answer = counter.answer()
    whole = funnel(rows, STAGES, 0, 100, 0)
    assert answer["customers"] == whole["customers"] == 4
    for dropped, stage in zip(answer["stages"], whole["stages"], strict=True):
        assert dropped["reached"] == stage["reached"]
    awareness = answer["stages"][0]  # ada (skipped consideration: passed it), bob go on
    assert (awareness["reached"], awareness["continued"], awareness["dropped"]) == (3, 2, 1)
    assert awareness["drop_rate"] == round(1 / 3, 6)
    assert answer["stages"][-1]["dropped"] is None  # the last stage has no drop-off
    channels = {g["group"]: g["stages"][0]["dropped"] for g in answer["by_channel"]}
    assert channels == {"ads": 0, "email": 1}
    campaigns = {g["group"] for g in answer["by_campaign"]}
    assert campaigns == {"spring", "(none)", "winter"}
    # a window without the winter customer's entries leaves its campaign out: no empty group
    late = DropOff(STAGES, 0, 20)
    late.add(rows)
    assert {g["group"] for g in late.answer()["by_campaign"]} == {"spring", "(none)"}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.builds(
            stored,
            st.dictionaries(st.sampled_from(STAGES), st.integers(0, 30)),
            st.sampled_from(["web", "ads"]),
            st.sampled_from(["a", "b", None]),
        ),
        max_size=30,
    ),
    st.tuples(st.integers(0, 30), st.integers(0, 30)).map(sorted),
)
def test_drop_off_adds_up(raws: list[list[Any]], window: list[int]) -> None:
    counter = DropOff(STAGES, *window)
    counter.add(decoded(r) for r in raws)
    answer = counter.answer()
    for i, stage in enumerate(answer["stages"]):
        for split in ("by_channel", "by_campaign"):
            groups = answer[split]
            assert all(g["customers"] > 0 for g in groups)
            assert sum(g["stages"][i]["reached"] for g in groups) == stage["reached"]
            if stage["dropped"] is not None:
                assert sum(g["stages"][i]["dropped"] for g in groups) == stage["dropped"]
                assert 0 <= stage["dropped"] <= stage["reached"]


def test_personas_list_values_with_customers_in_the_window_only() -> None:
    counter = Personas(STAGES, 0, 100, ["plan", "country", "role"])
    counter.add(decoded(r) for r in (ADA, BOB, CY, OLD))
    assert counter.answer() == [
        {
            "trait": "plan",
            "values": [
                {"value": "pro", "customers": 2},
                {"value": "free", "customers": 1},
                {"value": "true", "customers": 1},
            ],
        },
        {"trait": "country", "values": [{"value": "DE", "customers": 2}]},
        {"trait": "role", "values": []},
    ]
    early = Personas(STAGES, 0, 3, ["plan"])
    early.add(decoded(r) for r in (ADA, BOB, CY, OLD))
    assert early.answer()[0]["values"] == [
        {"value": "free", "customers": 1},
        {"value": "pro", "customers": 1},
    ]


def test_flows_count_links_whose_target_was_entered_in_the_window() -> None:
    answer = flows(as_stored(ADA, OLD), list(STAGES), since=0, until=100)
    links = {(x["source"], x["target"]): x["customers"] for x in answer["links"]}
    # the winter customer's awareness was before the window: only its next move counts
    assert links == {
        (f"{FIRST_TOUCH}: ads", "awareness"): 1,
        ("awareness", "decision"): 1,
        ("awareness", "consideration"): 1,
    }
    assert answer["customers"] == 2
    assert flows(as_stored(ADA, OLD), list(STAGES), since=31, until=100)["customers"] == 0
    persona = flows(as_stored(ADA, BOB, OLD), list(STAGES), Selection(traits={"country": ["DE"]}))
    assert persona["customers"] == 2


def test_firing_counts_per_day_and_trigger() -> None:
    days = days_between(date(2026, 11, 2), date(2026, 11, 4))
    assert [d.isoformat() for d in days] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert days_between(date(2026, 11, 4), date(2026, 11, 2)) == []
    found = firing_counts(
        days,
        [
            {"fired\x1fcart": "3", "cancelled\x1fcart": "1", "junk": "9"},
            {},
            {"fired\x1fold-trigger": "2"},
        ],
        ["cart", "lapsing"],
    )
    assert found["triggers"] == ["cart", "lapsing", "old-trigger"]
    assert found["days"] == [
        {"day": "2026-11-02", "trigger": "cart", "fired": 3, "cancelled": 1, "net": 2},
        {"day": "2026-11-04", "trigger": "old-trigger", "fired": 2, "cancelled": 0, "net": 2},
    ]
    assert found["totals"] == [
        {"trigger": "cart", "fired": 3, "cancelled": 1, "net": 2},
        {"trigger": "lapsing", "fired": 0, "cancelled": 0, "net": 0},
        {"trigger": "old-trigger", "fired": 2, "cancelled": 0, "net": 2},
    ]


def test_the_funnel_row_keeps_persona_traits_first() -> None:
    traits = {f"a{n:02}": n for n in range(30)} | {"plan": "pro", "zz": "x" * 65}
    assert list(short_traits(traits)) == [f"a{n:02}" for n in range(20)]  # as before
    kept = short_traits(traits, ["plan", "country"])
    assert list(kept)[:2] == ["plan", "a00"] and len(kept) == 20
    assert "zz" not in short_traits(traits, ["zz"])  # still only short values
