"""The lifecycle (touchpath/cycles.py): cycles after the first purchase, against populations
worked out by hand, through the real pure core (effects → reference store → profiles →
funnel rows → funnel), and its invariance under how the facts are split and ordered.

Population (day n = JAN + n days, TOUCHPATH_LAPSE_DAYS 60):

=====  =================================================================  ====================
who    events                                                             cycles
=====  =================================================================  ====================
ann    page 0, Product Viewed 1, Order Completed 2, Order Completed 10,    1 first (bought 2),
       Onboarding Started 11                                               2 repeat 10
ben    page 0, Order Completed 1, page 5, page 100, Order Completed 101    1 first (bought 1,
                                                                           lapsed 66), 2 won_back
                                                                           100 (bought 101)
cat    page 0                                                              1 first
dan    Order Completed 0                                                   1 first (bought 0)
=====  =================================================================  ====================

ben's last event before the gap is on day 5: days 6…65 are 60 quiet days, so he lapsed at the
start of day 66 and was won back by the page on day 100.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from api.funnel import funnel
from api.rows import parse_row
from tests.reference import ReferenceStore, make_event
from touchpath.anchors import AnchorData
from touchpath.cycles import (
    DAY_MS,
    FIRST,
    LAPSED,
    REPEAT,
    WON_BACK,
    as_of,
    cycles_of,
    journey_times,
    lapse_moment,
)
from touchpath.effects import effects_of
from touchpath.funnel_rows import funnel_row
from touchpath.profiles import lifecycle
from touchpath.stages import load_stage_model

MODEL = load_stage_model()
JAN = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000


def day(n: float) -> int:
    return JAN + int(n * DAY_MS)


def active(*times: int) -> dict[int, int]:
    """Active days (epoch day → first event ms) of some event times."""
    found: dict[int, int] = {}
    for at in times:
        found[at // DAY_MS] = min(at, found.get(at // DAY_MS, at))
    return found


def track(user: str, mid: str, at: int, name: str) -> dict[str, Any]:
    return make_event("track", mid, at, userId=user, event=name)


def page(user: str, mid: str, at: int, path: str = "/") -> dict[str, Any]:
    return make_event("page", mid, at, userId=user, properties={"path": path})


POPULATION = [
    page("ann", "a1", day(0)),
    track("ann", "a2", day(1), "Product Viewed"),
    track("ann", "a3", day(2), "Order Completed"),
    track("ann", "a4", day(10), "Order Completed"),
    track("ann", "a5", day(11), "Onboarding Started"),
    page("ben", "b1", day(0)),
    track("ben", "b2", day(1), "Order Completed"),
    page("ben", "b3", day(5) + 5 * HOUR),
    page("ben", "b4", day(100) + 9 * HOUR),
    track("ben", "b5", day(101), "Order Completed"),
    page("cat", "c1", day(0)),
    track("dan", "d1", day(0), "Order Completed"),
]


def profiles(events: list[dict[str, Any]] = POPULATION) -> dict[str, dict[str, Any]]:
    store = ReferenceStore(MODEL)
    store.apply_batch(events)
    return {p["identities"][0].removeprefix("user_id:"): p for p in store.profiles.values()}


def test_cycles_of_the_population() -> None:
    found = profiles()
    ann, ben, cat, dan = (found[n] for n in ("ann", "ben", "cat", "dan"))
    assert ann["cycle"] == {"number": 2, "state": REPEAT, "since": day(10)}
    assert [(c["kind"], c["since"], c["purchases"], c["lapsed_at"]) for c in ann["cycles"]] == [
        (FIRST, day(0), 1, None),
        (REPEAT, day(10), 1, None),
    ]
    assert ann["cycles"][0]["stages"] == {
        "awareness": day(0),
        "consideration": day(1),
        "purchase": day(2),
    }  # post-purchase came after the repeat purchase: not part of the first journey
    assert ann["cycles"][1]["stages"] == {"purchase": day(10), "post-purchase": day(11)}
    assert ben["cycle"] == {"number": 2, "state": WON_BACK, "since": day(100) + 9 * HOUR}
    assert [(c["kind"], c["purchases"], c["lapsed_at"]) for c in ben["cycles"]] == [
        (FIRST, 1, day(66)),
        (WON_BACK, 1, None),
    ]
    assert ben["cycles"][1]["stages"] == {"awareness": day(100) + 9 * HOUR, "purchase": day(101)}
    assert ben["last_active"] == day(101)
    assert cat["cycles"] == [
        {
            "number": 1,
            "kind": FIRST,
            "since": day(0),
            "purchases": 0,
            "lapsed_at": None,
            "stages": {"awareness": day(0)},
        }
    ]
    assert dan["cycle"] == {"number": 1, "state": FIRST, "since": day(0)}


def test_the_clock_lapses_a_quiet_customer_who_purchased_at_read_time() -> None:
    found = profiles()
    dan, cat, ben = found["dan"], found["cat"], found["ben"]
    assert as_of(dan, day(61) - 1, 60)["cycle"]["state"] == FIRST  # 60 quiet days not over
    lapsed = as_of(dan, day(61), 60)
    assert lapsed["cycle"] == {"number": 1, "state": LAPSED, "since": day(61)}
    assert lapsed["cycles"][-1]["lapsed_at"] == day(61)
    assert dan["cycles"][-1]["lapsed_at"] is None  # the stored profile does not change
    assert as_of(cat, day(500), 60)["cycle"]["state"] == FIRST  # never purchased: not lapsed
    assert as_of(ben, day(101 + 61), 60)["cycle"]["state"] == LAPSED
    assert as_of(ben, day(101 + 61), 90)["cycle"]["state"] == WON_BACK


def test_a_lapse_needs_lapse_days_whole_quiet_days() -> None:
    bought = [day(0)]
    on_time = cycles_of(day(0), bought, active(day(0), day(60) + HOUR), 60)
    assert [c.kind for c in on_time] == [FIRST]  # days 1…59 quiet: 59 days
    late = cycles_of(day(0), bought, active(day(0), day(61) + HOUR), 60)
    assert [(c.kind, c.since) for c in late] == [(FIRST, day(0)), (WON_BACK, day(61) + HOUR)]
    assert late[0].lapsed_at == lapse_moment(day(0) // DAY_MS, 60) == day(61)
    prospect = cycles_of(day(0), [], active(day(0), day(200)), 60)
    assert [c.kind for c in prospect] == [FIRST]  # no purchase yet: quiet, not lapsed


def test_purchases_after_a_win_back_and_numbers() -> None:
    days = active(day(0), day(100), day(101), day(102))
    found = cycles_of(day(0), [day(0), day(101), day(102)], days, 60)
    assert [(c.number, c.kind, c.purchases) for c in found] == [
        (1, FIRST, 1),
        (2, WON_BACK, 1),  # the first purchase after the return converts the win-back
        (3, REPEAT, 1),
    ]
    dropped = cycles_of(day(0), [day(101), day(102)], days, 60, dropped=3)
    assert [c.number for c in dropped] == [1, 5]  # three purchases beyond the bound


def test_machine_opens_are_no_activity() -> None:
    opened = make_event(
        "track", "m1", day(0), userId="x", event="Email Opened", properties={"machine_open": True}
    )
    assert not effects_of(opened, MODEL).active
    assert effects_of(page("x", "m2", day(0)), MODEL).active


def test_the_funnel_counts_first_and_repeat_journeys_apart() -> None:
    rows = [parse_row(orjson.dumps(funnel_row(p)), MODEL.stages) for p in profiles().values()]
    kept = [r for r in rows if r is not None]

    def reached(journey: str) -> tuple[int, list[int], list[int]]:
        answer = funnel(kept, MODEL.stages, day(-1), day(200), day(200), journey=journey)
        stages = answer["stages"]
        return answer["customers"], [s["reached"] for s in stages], [s["stalled"] for s in stages]

    # awareness, consideration, decision, purchase, post-purchase
    assert reached("all") == (4, [4, 3, 3, 3, 1], [1, 0, 0, 2, 0])
    assert reached("first") == (4, [4, 3, 3, 3, 0], [1, 0, 0, 1, 0])
    assert reached("repeat") == (2, [2, 2, 2, 2, 1], [0, 0, 0, 1, 0])
    in_window = funnel(kept, MODEL.stages, day(50), day(200), day(200), journey="repeat")
    assert [s["reached"] for s in in_window["stages"]] == [1, 1, 1, 1, 0]  # ben's win-back


def test_journey_times_of_a_single_cycle_hold_only_the_activity() -> None:
    assert journey_times(profiles()["cat"]) == {"active": day(0)}


FACTS = st.lists(
    st.tuples(st.integers(0, 400), st.integers(0, DAY_MS - 1), st.booleans()),
    min_size=1,
    max_size=25,
)


@given(FACTS, st.randoms(use_true_random=False), st.integers(1, 90))
def test_the_lifecycle_is_the_same_however_facts_are_split_and_ordered(
    facts: list[tuple[int, int, bool]], rng: Any, lapse: int
) -> None:
    """Active days and purchases spread over several identifiers in any order, repeated:
    the same cycles as all on one identifier."""

    def anchors(spread: bool) -> list[AnchorData]:
        found = [AnchorData() for _ in range(3)]
        items = facts + facts[: len(facts) // 2]  # some delivered twice
        rng.shuffle(items)
        bought: set[int] = set()
        for k, (d, offset, purchase) in enumerate(items):
            target = found[k % 3] if spread else found[0]
            at = day(d) + offset
            target.days[at // DAY_MS] = min(at, target.days.get(at // DAY_MS, at))
            if purchase and at not in bought:  # de-duplicated: stored once, under one anchor
                bought.add(at)
                target.purchases.append(at)
        return found

    def derive(data: list[AnchorData]) -> dict[str, Any]:
        totals = {"orders": float(sum(len(a.purchases) for a in data))}
        touch = {"at_ms": min(at for a in data for at in a.days.values())}
        return lifecycle(data, touch, {}, [], MODEL, lapse, totals)

    assert derive(anchors(True)) == derive(anchors(False))
