"""The lifecycle end to end: events in through the collector, out of the profile and funnel.

Times are days before today at 10:00 UTC (``B`` = 200 days ago), TOUCHPATH_LAPSE_DAYS 60:

* lia — page B, Order Completed B+1, Order Completed B+9 (repeat), Onboarding Started B+10,
  page B+11, then nothing for 138 days: lapsed at the start of day B+72; page B+150 (won
  back), Order Completed B+151 (the win-back's purchase), 49 days ago: not lapsed now.
* max — page B, Order Completed B+4, nothing since: lapsed now (the clock's lapse, at read
  time), from the start of day B+65.
* ned — page B: never purchased, never lapsed.

The later half of lia's events is sent first: arrival order does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import schemas, schemas_analytics
from api.timeparse import iso
from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service, wait_for

READ = {"Authorization": f"Bearer {READ_TOKEN}"}
DAY_MS = 86_400_000
TODAY = int(time.time() * 1000) // DAY_MS * DAY_MS
B = TODAY - 200 * DAY_MS


def at(days: int) -> int:
    return B + days * DAY_MS + 10 * 3_600_000


def event(kind: str, mid: str, days: int, user: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "timestamp": iso(at(days)), "userId": user, **fields}


def order(mid: str, days: int, user: str) -> dict[str, Any]:
    return event("track", mid, days, user, event="Order Completed", properties={"revenue": 10})


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_LAPSE_DAYS="60")
    children = [start_service(name, env, run_dir) for name in ("collector", "processor", "api")]
    yield {c.name: f"http://127.0.0.1:{c.port}" for c in children}
    for child in children:
        child.stop()


def post(stack: dict[str, str], events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{stack['collector']}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, "")
    )
    assert response.status_code == 200, response.text


def get(stack: dict[str, str], path: str, **params: Any) -> dict[str, Any] | None:
    response = httpx.get(f"{stack['api']}{path}", headers=READ, params=params)
    return response.json() if response.is_success else None


def profile(stack: dict[str, str], user: str) -> dict[str, Any] | None:
    return get(stack, f"/v1/customers/{user}", type="user_id")


@pytest.fixture(scope="module")
def population(stack: dict[str, str]) -> None:
    later = [
        event("page", "l5", 150, "lia", properties={"path": "/"}),
        order("l6", 151, "lia"),
        order("l3", 9, "lia"),
    ]
    earlier = [
        event("page", "l1", 0, "lia", properties={"path": "/"}),
        order("l2", 1, "lia"),
        event("track", "l4", 10, "lia", event="Onboarding Started"),
        event("page", "l7", 11, "lia", properties={"path": "/"}),
        event("page", "m1", 0, "max", properties={"path": "/"}),
        order("m2", 4, "max"),
        event("page", "n1", 0, "ned", properties={"path": "/"}),
    ]
    post(stack, later)
    wait_for(lambda: (profile(stack, "lia") or {}).get("orders") == 2)
    post(stack, earlier)
    wait_for(lambda: (profile(stack, "lia") or {}).get("orders") == 3)
    wait_for(lambda: (profile(stack, "max") or {}).get("orders") == 1)
    wait_for(lambda: profile(stack, "ned"))
    wait_for(lambda: len((profile(stack, "lia") or {}).get("cycles") or []) == 3)


def test_the_profile_shows_the_current_cycle_and_its_history(
    stack: dict[str, str], population: None
) -> None:
    lia = wait_for(lambda: profile(stack, "lia"))
    schemas.ProfileAnswer.model_validate(lia)
    assert lia["cycle"] == {"number": 3, "state": "won_back", "since": iso(at(150))}
    assert [
        (c["number"], c["kind"], c["since"], c["purchases"], c["lapsed_at"]) for c in lia["cycles"]
    ] == [
        (1, "first", iso(at(0)), 1, None),
        (2, "repeat", iso(at(9)), 1, iso(B + 72 * DAY_MS)),  # last active B+11, 60 quiet days
        (3, "won_back", iso(at(150)), 1, None),
    ]
    assert lia["cycles"][0]["stages"] == {"awareness": iso(at(0)), "purchase": iso(at(1))}
    assert lia["cycles"][1]["stages"] == {"purchase": iso(at(9)), "post-purchase": iso(at(10))}
    assert lia["cycles"][2]["stages"] == {"awareness": iso(at(150)), "purchase": iso(at(151))}
    assert lia["last_active"] == iso(at(151))
    max_ = wait_for(lambda: profile(stack, "max"))
    assert max_["cycle"] == {"number": 1, "state": "lapsed", "since": iso(B + 65 * DAY_MS)}
    assert max_["cycles"][0]["lapsed_at"] == iso(B + 65 * DAY_MS)
    ned = wait_for(lambda: profile(stack, "ned"))
    assert ned["cycle"] == {"number": 1, "state": "first", "since": iso(at(0))}


def test_the_funnel_counts_first_and_repeat_journeys_apart(
    stack: dict[str, str], population: None
) -> None:
    window = {"since": iso(B - DAY_MS), "until": iso(TODAY + DAY_MS)}

    def reached(journey: str) -> tuple[int, list[int]]:
        answer = get(stack, "/v1/funnel", journey=journey, **window)
        assert answer is not None
        schemas_analytics.FunnelAnswer.model_validate(answer)
        assert answer["journey"] == journey
        return answer["customers"], [s["reached"] for s in answer["stages"]]

    # awareness, consideration, decision, purchase, post-purchase
    assert reached("all") == (3, [3, 2, 2, 2, 1])
    assert reached("first") == (3, [3, 2, 2, 2, 0])  # lia's onboarding followed her repeat
    assert reached("repeat") == (2, [2, 2, 2, 2, 1])  # lia's repeat and her win-back
