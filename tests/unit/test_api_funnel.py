"""The funnel and business metrics: invariants against a brute-force reference."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.business import business_figures
from api.funnel import MAX_GROUPS, Funnel, funnel
from api.rows import FunnelRow, parse_row

STAGES = ("awareness", "consideration", "decision", "purchase", "post-purchase")
DAY = 86_400_000


def row(
    times: dict[str, int],
    channel: str | None = "web",
    campaign: str | None = None,
    traits: dict[str, Any] | None = None,
    revenue: float = 0.0,
    first: int | None = None,
) -> FunnelRow:
    raw = orjson.dumps([channel, campaign, times, traits or {}, revenue, first])
    parsed = parse_row(raw, STAGES)
    assert parsed is not None
    return parsed


customers = st.lists(
    st.builds(
        row,
        times=st.dictionaries(st.sampled_from(STAGES), st.integers(0, 50)),
        channel=st.sampled_from(["web", "email", None]),
        campaign=st.sampled_from(["spring", None]),
        traits=st.fixed_dictionaries({"plan": st.sampled_from(["pro", "free", True])}),
        revenue=st.sampled_from([0.0, 10.0, 99.5]),
        first=st.one_of(st.none(), st.integers(0, 50)),
    ),
    max_size=40,
)
windows = st.tuples(st.integers(-5, 55), st.integers(-5, 55)).map(sorted)


def effective(times: dict[str, int]) -> list[int | None]:
    """When each stage was first reached or passed (by the definition, not the code)."""
    return [
        min((times[s] for s in STAGES[i:] if s in times), default=None) for i in range(len(STAGES))
    ]


def reference(rows: list[FunnelRow], since: int, until: int, stalled_before: int) -> dict:
    reached, converted, stalled = [0] * 5, [0] * 4, [0] * 5
    gaps: list[list[int]] = [[] for _ in range(4)]
    for r in rows:
        times = {s: t for s, t in zip(STAGES, r.reached, strict=True) if t < 1 << 60}
        eff = effective(times)
        for i in range(5):
            if eff[i] is None or not since <= eff[i] <= until:
                continue
            reached[i] += 1
            nxt = eff[i + 1] if i < 4 else None
            if i < 4 and nxt is not None and nxt <= until:
                converted[i] += 1
                gaps[i].append(nxt - eff[i])
            if i == r.current and i < 4 and eff[i] < stalled_before:
                stalled[i] += 1
    return {"reached": reached, "converted": converted, "stalled": stalled, "gaps": gaps}


def exact_percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@settings(max_examples=300, deadline=None)
@given(customers, windows, st.integers(-5, 60))
def test_funnel_matches_the_definitions(
    rows: list[FunnelRow], window: list[int], stalled_before: int
) -> None:
    since, until = window
    answer = funnel(rows, STAGES, since, until, stalled_before)
    expected = reference(rows, since, until, stalled_before)
    figures = answer["stages"]
    assert [f["reached"] for f in figures] == expected["reached"]
    assert [f["stalled"] for f in figures] == expected["stalled"]
    assert [f["converted_to_next"] for f in figures[:4]] == expected["converted"]
    for f, gaps in zip(figures, expected["gaps"], strict=False):
        for key, fraction in (("median_seconds_to_next", 0.5), ("p90_seconds_to_next", 0.9)):
            if not gaps:
                assert f[key] is None
            else:
                exact = exact_percentile(gaps, fraction) / 1000
                assert f[key] == pytest.approx(exact, rel=0.0026, abs=0.0011)


@settings(max_examples=300, deadline=None)
@given(customers, windows, st.integers(-5, 60))
def test_funnel_invariants(rows: list[FunnelRow], window: list[int], stalled_before: int) -> None:
    since, until = window
    figures = funnel(rows, STAGES, since, until, stalled_before)["stages"]
    for i, f in enumerate(figures):
        assert 0 <= f["stalled"] <= f["reached"]
        if i + 1 < len(figures):
            assert f["converted_to_next"] <= f["reached"]
            assert f["converted_to_next"] <= figures[i + 1]["reached"]
            rate = f["conversion_to_next"]
            assert rate is None if f["reached"] == 0 else 0.0 <= rate <= 1.0
        else:
            assert f["conversion_to_next"] is None and f["stalled"] == 0
    everything = funnel(rows, STAGES, -1, 10**6, stalled_before)["stages"]
    counts = [f["reached"] for f in everything]
    assert counts == sorted(counts, reverse=True)  # over all time: never grows along stages
    assert counts[0] == sum(1 for r in rows if r.current >= 0)


@settings(max_examples=200, deadline=None)
@given(customers, windows, st.sampled_from([None, "channel", "campaign", "trait.plan"]))
def test_chunks_and_groups_add_up(rows: list[FunnelRow], window: list[int], group_by: Any) -> None:
    since, until = window
    whole = funnel(rows, STAGES, since, until, 25, group_by)
    counter = Funnel(STAGES, since, until, 25, group_by)
    for start in range(0, len(rows), 7):
        counter.add(rows[start : start + 7])
    assert counter.answer() == whole
    if group_by is None:
        assert whole["groups"] is None
        return
    groups = whole["groups"]
    assert sum(g["customers"] for g in groups) == whole["customers"]
    for i in range(len(STAGES)):
        assert sum(g["stages"][i]["reached"] for g in groups) == whole["stages"][i]["reached"]


def test_skipped_stages_count_as_passed() -> None:
    ada = row({"awareness": 1 * DAY, "consideration": 2 * DAY, "purchase": 4 * DAY})
    bob = row({"awareness": 1 * DAY, "decision": 5 * DAY}, channel="email")
    figures = funnel([ada, bob], STAGES, 0, 10 * DAY, 0)["stages"]
    assert [f["reached"] for f in figures] == [2, 2, 2, 1, 0]
    assert figures[0]["conversion_to_next"] == 1.0
    assert figures[2]["conversion_to_next"] == 0.5
    assert figures[0]["median_seconds_to_next"] == pytest.approx(2.5 * 86400, rel=0.003)
    assert figures[2]["median_seconds_to_next"] == pytest.approx(0.0)  # ada: both at once


def test_many_groups_fold_into_other() -> None:
    rows = [row({"awareness": i}, traits={"n": i}) for i in range(MAX_GROUPS + 5)]
    groups = funnel(rows, STAGES, 0, 10**6, 0, "trait.n")["groups"]
    assert len(groups) == MAX_GROUPS + 1
    assert groups[-1]["group"] == "(other)" and groups[-1]["customers"] == 5


@settings(max_examples=300, deadline=None)
@given(customers, windows)
def test_business_figures_invariants(rows: list[FunnelRow], window: list[int]) -> None:
    since, until = window
    figures = business_figures(rows, since, until, STAGES.index("purchase"))
    seen = [r for r in rows if r.first is not None and since <= r.first <= until]
    assert figures["customers_seen"] == len(seen)
    assert 0 <= figures["purchasers"] <= figures["customers_seen"]
    for rate in (figures["conversion_rate"], figures["retention"]["rate"]):
        assert rate is None or 0.0 <= rate <= 1.0
    retention = figures["retention"]
    assert 0 <= retention["retained"] <= retention["active_previous_period"]
    value = figures["lifetime_value"]
    channels = value["by_first_touch_channel"]
    assert sum(c["customers"] for c in channels.values()) == len(seen)
    assert sum(c["purchasers"] for c in channels.values()) == figures["purchasers"]
    assert value["revenue"] == pytest.approx(sum(r.revenue for r in seen))


def test_business_figures_worked_example() -> None:
    ada = row({"awareness": 1 * DAY, "purchase": 4 * DAY}, revenue=120.5, first=1 * DAY)
    bob = row({"awareness": 1 * DAY, "decision": 5 * DAY}, channel="email", first=1 * DAY)
    cy = row({"awareness": 2 * DAY}, first=2 * DAY)
    early = row({"awareness": 0}, first=0)
    figures = business_figures([ada, bob, cy, early], 3 * DAY, 6 * DAY, 3)
    # previous period [0 d, 3 d): all four active; this one [3 d, 6 d]: ada and bob
    assert figures["retention"] == {"active_previous_period": 4, "retained": 2, "rate": 0.5}
    assert figures["customers_seen"] == 0 and figures["conversion_rate"] is None
    cohort = business_figures([ada, bob, cy, early], 1 * DAY, 3 * DAY, 3)
    assert cohort["customers_seen"] == 3 and cohort["purchasers"] == 0  # ada bought on day 4
    lifetime = business_figures([ada, bob, cy, early], 1 * DAY, 10 * DAY, 3)
    assert lifetime["conversion_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert lifetime["lifetime_value"]["per_purchasing_customer"] == 120.5
    assert lifetime["lifetime_value"]["by_first_touch_channel"]["email"] == {
        "customers": 1,
        "purchasers": 0,
        "revenue": 0.0,
        "per_purchasing_customer": None,
    }


def test_groups_without_a_customer_in_the_window_are_left_out() -> None:
    """The journey map offered "winter-sale (0)": a campaign none of whose customers
    reached a stage in the window is no group of the answer."""
    rows = [
        row({"awareness": 5 * DAY}, campaign="spring"),
        row({"awareness": 1 * DAY}, campaign="winter-sale"),  # before the window
        row({}, campaign="ghost"),  # never reached a stage
    ]
    groups = funnel(rows, STAGES, 2 * DAY, 10 * DAY, 0, "campaign")["groups"]
    assert [(g["group"], g["customers"]) for g in groups] == [("spring", 1)]
    everything = funnel(rows, STAGES, 0, 10 * DAY, 0, "campaign")["groups"]
    assert {g["group"] for g in everything} == {"spring", "winter-sale"}
