"""The journey map page in headless Chromium against a stack fed with a synthetic population:
the numbers it shows must be the API's, through filters and a customer look-up."""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from infra.embedded import Child
from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service, wait_for

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHANNELS = ["ads", "email", "social", "search"]
CAMPAIGNS = ["spring-sale", "newsletter", "brand"]
STEPS = [  # (event, stage it leads to) in journey order
    ({"type": "track", "event": "Product Viewed"}, "consideration"),
    ({"type": "track", "event": "Product Added"}, "decision"),
    ({"type": "track", "event": "Order Completed", "properties": {"revenue": 40}}, "purchase"),
    ({"type": "track", "event": "Review Submitted"}, "post-purchase"),
]


START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=20)
PRECISE = timedelta(hours=11, minutes=30)  # consideration → decision of the enterprise persona


def population(size: int, seed: int = 7) -> list[dict[str, Any]]:
    """Customers who arrive by a channel and campaign and go some way down the funnel, each
    with a persona (plan, country); dated from 20 days ago (server key: times are kept)."""
    rng = random.Random(seed)
    events = []
    for n in range(size):
        user = f"map-{n}"
        at = START + timedelta(hours=n)
        first = {
            "type": "page",
            "anonymousId": f"anon-{user}",
            "properties": {"path": "/"},
            "context": {
                "channel": rng.choice(CHANNELS),
                "campaign": {"name": rng.choice(CAMPAIGNS)},
            },
            "timestamp": at.isoformat(),
        }
        identify = {
            "type": "identify",
            "anonymousId": f"anon-{user}",
            "userId": user,
            "traits": {
                "email": f"{user}@example.com",
                "plan": rng.choice(["free", "pro"]),
                "country": rng.choice(["DE", "FR", "US"]),
            },
            "timestamp": (at + timedelta(minutes=5)).isoformat(),
        }
        events += [first, identify]
        for depth, (step, _) in enumerate(STEPS[: rng.randint(0, len(STEPS))]):
            channel = rng.choice(["web", "email", "chat"])
            when = at + timedelta(hours=2 + depth * rng.randint(1, 30))
            events.append(
                {
                    **step,
                    "userId": user,
                    "context": {"channel": channel},
                    "timestamp": when.isoformat(),
                }
            )
    return events + precise_persona() + winter_sale() + [ghost()]


def precise_persona() -> list[dict[str, Any]]:
    """Four enterprise customers who each took exactly 11.5 h from consideration to decision
    (and 1 h from awareness to consideration), eight days in."""
    events = []
    for k in range(4):
        user, at = f"map-enterprise-{k}", START + timedelta(days=8, hours=k)
        touch = {"channel": "search", "campaign": {"name": "brand"}}
        viewed, added = at + timedelta(hours=1), at + timedelta(hours=1) + PRECISE
        events += [
            {"type": "page", "userId": user, "context": touch, "timestamp": at.isoformat()},
            {
                "type": "identify",
                "userId": user,
                "traits": {"plan": "enterprise", "country": "DE"},
                "timestamp": (at + timedelta(minutes=1)).isoformat(),
            },
            {**STEPS[0][0], "userId": user, "timestamp": viewed.isoformat()},
            {**STEPS[1][0], "userId": user, "timestamp": added.isoformat()},
        ]
    return events


def winter_sale() -> list[dict[str, Any]]:
    """Three customers of a campaign two months before the others."""
    at = START - timedelta(days=60)
    return [
        {
            "type": "page",
            "userId": f"map-winter-{k}",
            "properties": {"path": "/"},
            "context": {"channel": "ads", "campaign": {"name": "winter-sale"}},
            "timestamp": (at + timedelta(hours=k)).isoformat(),
        }
        for k in range(3)
    ]


def ghost() -> dict[str, Any]:
    """A customer of a campaign who never reached a stage: no stage, so never a choice."""
    return {
        "type": "identify",
        "userId": "map-ghost",
        "traits": {"plan": "ghost"},
        "context": {"channel": "email", "campaign": {"name": "ghost-campaign"}},
        "timestamp": START.isoformat(),
    }


CUSTOMERS = 40 + 4 + 3  # who reached a stage (the ghost did not)


class Stack:
    def __init__(self, children: list[Child]) -> None:
        self.collector, _, self.api = (f"http://127.0.0.1:{c.port}" for c in children)
        self.http = httpx.Client(headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.http.get(f"{self.api}{path}", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[Stack]:
    env = stack_env(bootstrap, redis_url)
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    found = Stack(children)
    events = population(40)
    for start in range(0, len(events), 100):
        batch = {"batch": events[start : start + 100]}
        answer = httpx.post(f"{found.collector}/v1/batch", json=batch, auth=(WRITE_KEY, ""))
        assert answer.status_code == 200 and not answer.json().get("rejected"), answer.text
    wait_for(lambda: found.get("/v1/funnel")["customers"] == CUSTOMERS, 30)
    yield found
    for child in children:
        child.stop()


def shown_funnel(page: Any) -> dict[str, tuple[str, str]]:
    rows = page.query_selector_all("#funnel tbody tr")
    return {
        r.get_attribute("data-stage"): (
            r.query_selector(".reached").inner_text(),
            r.query_selector(".conversion").inner_text(),
        )
        for r in rows
    }


def api_funnel(stack: Stack, **filters: str) -> dict[str, tuple[str, str]]:
    answer = stack.get("/v1/funnel", **filters)
    return {
        s["stage"]: (
            str(s["reached"]),
            shown_percent(s["conversion_to_next"])
            if s["next_stage"] and s["conversion_to_next"] is not None
            else "—",
        )
        for s in answer["stages"]
    }


def test_journey_map_shows_the_api_numbers(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(f"{stack.api}/map#token={READ_TOKEN}")
    page.wait_for_selector("body[data-ready=true]")
    assert "token=" not in page.url  # the token leaves the address bar
    assert shown_funnel(page) == api_funnel(stack)
    assert int(page.get_attribute("#funnel", "data-customers")) == CUSTOMERS

    flows = stack.get("/v1/flows")
    links = page.query_selector_all("#sankey path.link")
    assert len(links) == len(flows["links"]) > 0
    drawn = sorted(
        (
            link.get_attribute("data-source"),
            link.get_attribute("data-target"),
            link.get_attribute("data-channel"),
            int(link.get_attribute("data-customers")),
        )
        for link in links
    )
    assert drawn == sorted(
        (f["source"], f["target"], f["channel"], f["customers"]) for f in flows["links"]
    )
    page.screenshot(path=str(artifacts / "journey-map.png"), full_page=True)

    page.select_option("#channel", "ads")
    expected = api_funnel(stack, channel="ads")
    ads = stack.get("/v1/funnel", channel="ads")["customers"]
    # expect() retries from Playwright's side: wait_for_function's polling evaluates a string
    # in the page, which the map's Content-Security-Policy (no 'unsafe-eval') refuses
    expect(page.locator("#funnel")).to_have_attribute("data-customers", str(ads))
    assert shown_funnel(page) == expected
    ads_flows = stack.get("/v1/flows", channel="ads")
    expect(page.locator("#sankey path.link")).to_have_count(len(ads_flows["links"]))
    page.screenshot(path=str(artifacts / "journey-map-ads.png"), full_page=True)

    email = next(  # a customer who went the whole way, for a telling timeline
        f"map-{n}@example.com"
        for n in range(40)
        if stack.get(f"/v1/customers/map-{n}@example.com", type="email")["stage"] == "post-purchase"
    )
    page.fill("#identifier", email)
    page.select_option("#id-type", "email")
    page.click("#lookup button")
    profile = stack.get(f"/v1/customers/{email}", type="email")
    journey = stack.get(f"/v1/customers/{email}/journey", type="email", limit=200)
    page.wait_for_selector("#timeline")
    assert page.inner_text("#customer-stage") == (profile["stage"] or "—")
    assert len(page.query_selector_all("#timeline li")) == len(journey["entries"])
    marked = {h["message_id"] for h in profile["stage_history"]}
    shown = {
        li.get_attribute("data-id") for li in page.query_selector_all("#timeline li.stage-change")
    }
    assert shown == marked & {e["id"] for e in journey["entries"]}
    kinds = {li.get_attribute("data-type") for li in page.query_selector_all("#identities li")}
    assert {"user_id", "email", "anonymous_id"} <= kinds
    page.screenshot(path=str(artifacts / "journey-map-customer.png"), full_page=True)
    page.close()


def shown_percent(share: float) -> str:
    """What the map shows for a share: JavaScript's ``(100 * share).toFixed(1)``, which
    rounds an exact half up (Python's format rounds it to even)."""
    exact = Decimal(100 * share).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{exact}%"


def shown_duration(seconds: float | None) -> str:
    """What the map shows for a duration: in its largest unit, rounded to the power of ten
    just coarser than the funnel's 0.5 %-wide histogram buckets (as map.js does)."""
    if seconds is None:
        return "—"
    units = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))
    for i, (size, unit) in enumerate(units):
        if seconds < size and i < len(units) - 1:
            continue
        shown = to_precision(seconds / size)
        if i > 0 and shown * size >= units[i - 1][0]:
            return shown_duration(shown * size)
        return f"{shown:g} {unit}"
    raise AssertionError("unreachable")


def to_precision(value: float) -> float:
    if value <= 0:
        return 0.0
    k = math.ceil(math.log10(value * 0.005))
    if k >= 0:
        return math.floor(value / 10**k + 0.5) * 10**k  # JavaScript's Math.round: half up
    return float(f"{math.floor(value * 10**-k + 0.5) / 10**-k:.{-k}f}")


def test_durations_show_the_precision_they_have() -> None:
    assert shown_duration(11.5 * 3600) == "11.5 h"  # was "12 h"
    assert shown_duration(41_412.3) == "11.5 h"  # a histogram's reading, within 0.25 %
    assert shown_duration(3_594.0) == "1 h"  # 1 h read 0.17 % low: not "59.9 min"
    assert shown_duration(86_300) == "1 d" and shown_duration(12 * 3600) == "12 h"
    assert shown_duration(4_500) == "1.25 h" and shown_duration(95_904) == "1.11 d"
    assert shown_duration(90) == "1.5 min" and shown_duration(2.5 * 86400) == "2.5 d"
    assert shown_duration(0.0) == "0 s" and shown_duration(0.5) == "0.5 s"
    assert shown_duration(None) == "—"


def settle(page: Any) -> None:
    """Wait until the page has drawn every answer it asked for (Playwright-side polling:
    the map's Content-Security-Policy refuses wait_for_function's string evaluation)."""
    expect(page.locator("body[data-busy]")).to_have_count(0)


def options(page: Any, select: str) -> dict[str, int]:
    return {
        o.get_attribute("value"): int(o.get_attribute("data-customers"))
        for o in page.query_selector_all(f"{select} option")
        if o.get_attribute("value")
    }


def shown_table(page: Any, selector: str) -> list[list[str]]:
    return [
        [cell.inner_text() for cell in row.query_selector_all("td")]
        for row in page.query_selector_all(f"{selector} tbody tr:not(.total)")
    ]


def check_counts(page: Any, stack: Stack, query: dict[str, str]) -> None:
    """Every count the map shows equals the API's answer to the same question."""
    funnel = stack.get("/v1/funnel", **query)
    flows = stack.get("/v1/flows", **query)
    drop = stack.get("/v1/drop-off", **query)
    expect(page.locator("#funnel")).to_have_attribute("data-customers", str(funnel["customers"]))
    entered: dict[str, int] = {}
    for link in flows["links"]:
        entered[link["target"]] = entered.get(link["target"], 0) + link["customers"]
    assert shown_table(page, "#funnel") == [
        [
            s["stage"],
            str(s["reached"]),
            "",
            str(entered.get(s["stage"], 0)),
            shown_percent(s["conversion_to_next"])
            if s["next_stage"] and s["conversion_to_next"] is not None
            else "—",
            shown_duration(s["median_seconds_to_next"]),
            shown_duration(s["p90_seconds_to_next"]),
            str(s["stalled"]),
        ]
        for s in funnel["stages"]
    ]
    drawn = sorted(
        (
            x.get_attribute("data-source"),
            x.get_attribute("data-target"),
            x.get_attribute("data-channel"),
            int(x.get_attribute("data-customers")),
        )
        for x in page.query_selector_all("#sankey path.link")
    )
    assert drawn == sorted(
        (x["source"], x["target"], x["channel"], x["customers"]) for x in flows["links"]
    )
    for label in page.query_selector_all("#sankey text[data-node]"):  # each node explains itself
        name = label.get_attribute("data-node")
        if name in entered:
            assert label.get_attribute("data-customers") == str(entered[name])
            assert "entered" in label.query_selector("title").text_content()
    assert shown_table(page, "#drop-off") == [
        [
            s["stage"],
            str(s["reached"]),
            "—" if s["continued"] is None else str(s["continued"]),
            "—" if s["dropped"] is None else str(s["dropped"]),
            "—" if s["drop_rate"] is None else shown_percent(s["drop_rate"]),
        ]
        for s in drop["stages"]
    ]
    split = page.eval_on_selector("#drop-split", "e => e.value")
    assert [
        r.get_attribute("data-group") for r in page.query_selector_all("#drop-split-table tbody tr")
    ] == [g["group"] for g in drop[split]]
    cells = {
        (r.get_attribute("data-group"), c.get_attribute("data-stage")): int(
            c.get_attribute("data-dropped")
        )
        for r in page.query_selector_all("#drop-split-table tbody tr")
        for c in r.query_selector_all("td.cell")
    }
    assert cells == {
        (g["group"], s["stage"]): s["dropped"]
        for g in drop[split]
        for s in g["stages"]
        if s["next_stage"]
    }


def cart_abandonments(stack: Stack) -> int:
    """Customers who entered decision and no purchase within 2 hours: the default rules'
    cart-abandonment, worked out from the profiles (not from the firing counts)."""
    found = 0
    users = [f"map-{n}" for n in range(40)] + [f"map-enterprise-{k}" for k in range(4)]
    for user in users:
        history = {
            h["stage"]: h["entered_at"] for h in stack.get(f"/v1/customers/{user}")["stage_history"]
        }
        if "decision" not in history:
            continue
        due = datetime.fromisoformat(history["decision"].replace("Z", "+00:00")) + timedelta(
            hours=2
        )
        bought = history.get("purchase")
        found += bought is None or datetime.fromisoformat(bought.replace("Z", "+00:00")) > due
    return found


def test_journey_map_date_range_persona_drop_off_and_firings(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    expected_firings = cart_abandonments(stack)
    assert expected_firings > 4  # the enterprise four abandon their carts, and some others
    wait_for(
        lambda: (
            next(
                t["fired"]
                for t in stack.get("/v1/triggers/firings")["totals"]
                if t["trigger"] == "cart-abandonment"
            )
            == expected_firings
        ),
        30,
    )
    page = browser.new_page(viewport={"width": 1280, "height": 2400})
    page.goto(f"{stack.api}/map#token={READ_TOKEN}")
    page.wait_for_selector("body[data-ready=true]")
    settle(page)

    # all time: the winter sale is offered, the campaign nobody reached a stage in is not
    everything = stack.get("/v1/funnel", group_by="campaign")["groups"]
    assert options(page, "#campaign") == {
        g["group"]: g["customers"] for g in everything if g["group"] != "(none)"
    }
    assert "winter-sale" in options(page, "#campaign") and "ghost-campaign" not in options(
        page, "#campaign"
    )
    assert all(
        count > 0
        for select in ("#channel", "#campaign")
        for count in options(page, select).values()
    )

    # a date range: from the first customers' day to ten days later
    first, last = START.date().isoformat(), (START + timedelta(days=10)).date().isoformat()
    page.fill("#since", first)
    page.fill("#until", last)
    page.dispatch_event("#until", "change")
    settle(page)
    window = {"since": f"{first}T00:00:00Z", "until": f"{last}T23:59:59.999Z"}
    check_counts(page, stack, window)
    campaigns = stack.get("/v1/funnel", group_by="campaign", **window)["groups"]
    assert options(page, "#campaign") == {
        g["group"]: g["customers"] for g in campaigns if g["group"] != "(none)"
    }
    assert "winter-sale" not in options(page, "#campaign")  # no customer in the range
    note = page.inner_text("#range-note")
    assert first in note and last in note

    # explanations where the counts are shown
    legend = page.inner_text("#funnel-legend")
    assert "or a later one" in legend and "this very stage" in legend
    assert "entered" in page.inner_text("#flow-note") and "Reached" in page.inner_text("#flow-note")
    assert "Reached \u2212 Continued" in page.inner_text("#drop-note")
    for cell in page.query_selector_all(
        "#funnel td.reached, #funnel td.entered, #funnel td.conversion"
    ):
        assert cell.get_attribute("title")
    page.screenshot(path=str(artifacts / "journey-map-range.png"), full_page=True)
    shutil.copy(artifacts / "journey-map-range.png", DOCS / "journey-map.png")

    # a persona: the values offered are the API's, the counts follow it
    personas = {p["trait"]: p["values"] for p in stack.get("/v1/personas", **window)["personas"]}
    traits = [o.get_attribute("value") for o in page.query_selector_all("#persona-trait option")]
    assert traits == ["", *[t for t, values in personas.items() if values]]
    page.select_option("#persona-trait", "country")
    assert options(page, "#persona-value") == {
        v["value"]: v["customers"] for v in personas["country"]
    }
    page.select_option("#persona-value", "DE")
    settle(page)
    check_counts(page, stack, {**window, "trait.country": "DE"})
    page.select_option("#drop-split", "by_campaign")
    check_counts(page, stack, {**window, "trait.country": "DE"})
    page.screenshot(path=str(artifacts / "journey-map-persona.png"), full_page=True)

    # times with the precision they have: 11.5 h is "11.5 h"
    page.select_option("#persona-trait", "plan")
    page.select_option("#persona-value", "enterprise")
    settle(page)
    enterprise = {**window, "trait.plan": "enterprise"}
    check_counts(page, stack, enterprise)
    row = page.locator('#funnel tr[data-stage="consideration"] td.median')
    assert row.inner_text() == "11.5 h"
    assert stack.get("/v1/funnel", **enterprise)["stages"][1][
        "median_seconds_to_next"
    ] == pytest.approx(PRECISE.total_seconds(), rel=0.0025)
    assert "within 0.25 %" in (row.get_attribute("title") or "")
    assert page.inner_text('#funnel tr[data-stage="awareness"] td.median') == "1 h"

    # trigger firings over time, per day and trigger, as the API counts them
    firings = stack.get("/v1/triggers/firings", **window)
    assert shown_table(page, "#firings") == [
        [d["day"], d["trigger"], str(d["fired"]), str(d["cancelled"]), str(d["net"])]
        for d in firings["days"]
    ]
    totals = {
        r.get_attribute("data-total"): int(r.query_selector(".fired").inner_text())
        for r in page.query_selector_all("#firings tr.total")
    }
    assert totals == {t["trigger"]: t["fired"] for t in firings["totals"]}
    assert totals["cart-abandonment"] == expected_firings  # all due in the range
    bars = {
        (b.get_attribute("data-day"), b.get_attribute("data-trigger")): int(
            b.get_attribute("data-fired")
        )
        for b in page.query_selector_all("#firings-chart rect.firing")
    }
    assert bars == {(d["day"], d["trigger"]): d["fired"] for d in firings["days"]}
    enterprise_day = (START + timedelta(days=8)).date().isoformat()
    assert bars[(enterprise_day, "cart-abandonment")] >= 4
    page.screenshot(path=str(artifacts / "journey-map-moments.png"), full_page=True)

    # all time again: the range's controls clear, the winter sale is back
    page.click('button.preset[data-days=""]')
    settle(page)
    assert page.input_value("#since") == page.input_value("#until") == ""
    all_time = stack.get("/v1/funnel", group_by="campaign", **{"trait.plan": "enterprise"})
    assert options(page, "#campaign") == {
        g["group"]: g["customers"] for g in all_time["groups"] if g["group"] != "(none)"
    }
    page.select_option("#persona-trait", "")  # anyone
    settle(page)
    assert "winter-sale" in options(page, "#campaign")
    check_counts(page, stack, {})
    page.close()


def test_journey_map_shows_an_account(browser: Any, stack: Stack, artifacts: Path) -> None:
    groups = [
        {
            "type": "group",
            "userId": f"map-{n}",
            "groupId": "acme-map",
            "traits": {"name": "Acme", "seats": 10 + n},
            "timestamp": datetime(2026, 11, 2, n, tzinfo=UTC).isoformat(),
        }
        for n in range(3)
    ]
    answer = httpx.post(f"{stack.collector}/v1/batch", json={"batch": groups}, auth=(WRITE_KEY, ""))
    assert answer.status_code == 200, answer.text
    account = wait_for(
        lambda: (
            (a := stack.http.get(f"{stack.api}/v1/accounts/acme-map")).is_success
            and a.json()["members"] == 3
            and a.json()
        )
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(f"{stack.api}/map#token={READ_TOKEN}")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#group-id", "acme-map")
    page.click("#account-lookup button")
    page.wait_for_selector("#account-members li")
    assert page.inner_text("#account-stage") == (account["stage"] or "—")
    assert page.inner_text("#account-size") == "3"
    traits = {
        li.get_attribute("data-trait"): li.inner_text()
        for li in page.query_selector_all("#account-traits li")
    }
    assert traits == {"name": "name: Acme", "seats": "seats: 12"}  # the latest group call's
    members = stack.get("/v1/accounts/acme-map/members")["members"]
    shown = [
        li.get_attribute("data-customer") for li in page.query_selector_all("#account-members li")
    ]
    assert shown == [m["customer_id"] for m in members]
    page.screenshot(path=str(artifacts / "journey-map-account.png"), full_page=True)
    page.fill("#group-id", "no-such-account")
    page.click("#account-lookup button")
    page.wait_for_selector("#account p.error")
    page.close()


def test_journey_map_asks_for_a_token_and_reports_a_bad_one(browser: Any, stack: Stack) -> None:
    page = browser.new_page()
    page.goto(f"{stack.api}/map")
    page.wait_for_selector("#token-form:not([hidden])")
    page.fill("#token", "not-a-token")
    page.click("#token-form button")
    page.wait_for_selector("#status.error")
    assert "token" in page.inner_text("#status").lower()
    assert httpx.get(f"{stack.api}/map/nope.js").status_code == 404
    page.close()
