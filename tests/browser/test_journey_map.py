"""The journey map page in headless Chromium against a stack fed with a synthetic population:
the numbers it shows must be the API's, through filters and a customer look-up."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


def population(size: int, seed: int = 7) -> list[dict[str, Any]]:
    """Customers who arrive by a channel and campaign and go some way down the funnel."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    events = []
    for n in range(size):
        user = f"map-{n}"
        at = start + timedelta(hours=n)
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
            "traits": {"email": f"{user}@example.com"},
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
    return events


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
    wait_for(lambda: found.get("/v1/funnel")["customers"] == 40, 30)
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
            f"{100 * s['conversion_to_next']:.1f}%"
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
    assert int(page.get_attribute("#funnel", "data-customers")) == 40

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
    shutil.copy(artifacts / "journey-map-customer.png", DOCS / "journey-map.png")
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
