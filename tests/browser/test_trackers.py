"""The website trackers in a real browser: touchpath.js and Segment's analytics-next, then an
email click in the same browser; touchpoints asserted in Kafka and stitched in the API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.embedded import Child
from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, read_topic, stack_env, start_service, wait_for
from tests.npm import npm_install
from touchpath.email_links import click_url

LINK_KEY = "browser-link-key"
ANALYTICS_NEXT = "1.84.3"
CACHE = Path.home() / ".cache" / "touchpath-tests" / f"analytics-next-{ANALYTICS_NEXT}"


class Stack:
    def __init__(self, env: dict[str, str], children: list[Child]) -> None:
        self.env = env
        self.collector, _, self.api = (f"http://127.0.0.1:{c.port}" for c in children)

    def events(self, predicate: Any) -> list[dict[str, Any]]:
        records = read_topic(
            self.env["TOUCHPATH_KAFKA_BOOTSTRAP"],
            self.env["TOUCHPATH_TOPIC_TOUCHPOINTS"],
            10_000,
            3,
        )
        return [e for r in records for e in r["events"] if predicate(e)]

    def customer(self, value: str, kind: str) -> dict[str, Any] | None:
        answer = httpx.get(
            f"{self.api}/v1/customers/{value}",
            params={"type": kind},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        )
        return answer.json() if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[Stack]:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_EMAIL_LINK_KEY=LINK_KEY)
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    yield Stack(env, children)
    for child in children:
        child.stop()


PAGE = """<!doctype html><html><head><title>{title}</title>
<script>window.touchpath = window.touchpath || [];
touchpath.push(["load", {{writeKey: "{key}", host: "{collector}", flushInterval: 60000}}]);
</script><script async src="{collector}/v1/touchpath.js"></script></head>
<body><h1>{title}</h1>{body}</body></html>"""
LANDING_BODY = """<button id="add" onclick="touchpath.track('Product Added', {sku: 'SKU-1'})">
Add to cart</button> <a id="next" href="/pricing/index.html">Pricing</a>"""


def _write_site(root: Path, stack: Stack) -> None:
    fill = {"key": WRITE_KEY, "collector": stack.collector}
    (root / "landing.html").write_text(PAGE.format(title="Landing", body=LANDING_BODY, **fill))
    (root / "pricing").mkdir(exist_ok=True)
    (root / "pricing" / "index.html").write_text(PAGE.format(title="Pricing", body="", **fill))
    (root / "thanks.html").write_text("<!doctype html><title>Thanks</title><p>Thanks</p>")


def test_touchpath_js_page_views_batching_beacon_and_email_click_stitching(
    browser: Any, web_root: tuple[Path, str], stack: Stack, artifacts: Path
) -> None:
    root, site = web_root
    _write_site(root, stack)
    page = browser.new_page()
    page.goto(
        f"{site}/landing.html?utm_campaign=spring-sale&utm_source=newsletter&utm_medium=email"
    )
    page.wait_for_function("typeof window.touchpath.track === 'function'")
    page.click("#add")
    page.click("#next")  # page hide: the queued page view and track leave by sendBeacon
    page.wait_for_function("typeof window.touchpath.track === 'function'")
    anonymous_id = page.evaluate("touchpath.anonymousId()")
    page.evaluate("touchpath.flush()")
    mine = wait_for(
        lambda: _at_least(stack.events(lambda e: e.get("anonymousId") == anonymous_id), 3)
    )
    landing = next(
        e for e in mine if e["type"] == "page" and e["properties"]["path"] == "/landing.html"
    )
    assert landing["context"]["campaign"] == {
        "name": "spring-sale",
        "source": "newsletter",
        "medium": "email",
    }
    assert landing["context"]["library"]["name"] == "touchpath.js"
    added = next(e for e in mine if e.get("event") == "Product Added")
    assert added["properties"] == {"sku": "SKU-1"} and added["source"] == "website"
    pricing = next(
        e for e in mine if e["type"] == "page" and e["properties"]["path"] == "/pricing/index.html"
    )
    assert pricing["properties"]["referrer"].startswith(f"{site}/landing.html")
    page.screenshot(path=str(artifacts / "tracker-pricing.png"))

    link = click_url(
        stack.collector,
        LINK_KEY.encode(),
        recipient="shopper@example.com",
        campaign="spring-sale",
        message="m-42",
        url=f"{site}/thanks.html",
    )
    page.goto(link)  # the same browser follows the email's link: the cookie goes along
    assert page.url == f"{site}/thanks.html"
    customer = wait_for(lambda: _with_email(stack.customer(anonymous_id, "anonymous_id")))
    assert customer["stage"] == "decision"  # Product Added, whatever the email click says
    page.close()


def _at_least(found: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    return found if len(found) >= count else None


def _with_email(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    if not customer:
        return None
    values = {(i["type"], i["value"]) for i in customer["identities"]}
    return customer if ("email", "shopper@example.com") in values else None


def test_touchpath_js_keeps_failed_sends_and_retries_them(
    browser: Any, web_root: tuple[Path, str], stack: Stack
) -> None:
    root, site = web_root
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    (root / "offline.html").write_text(
        PAGE.format(title="Offline", body="", key=WRITE_KEY, collector=dead)
    )
    page = browser.new_page()
    page.route(
        f"{dead}/v1/touchpath.js",
        lambda route: route.fulfill(
            path=str(Path(__file__).resolve().parents[2] / "collector" / "static" / "touchpath.js"),
            content_type="application/javascript",
        ),
    )
    page.goto(f"{site}/offline.html")
    page.wait_for_function("typeof window.touchpath.track === 'function'")
    page.evaluate("touchpath.track('Retry Me', {n: 1}); touchpath.flush()")
    page.wait_for_function("(localStorage.getItem('tp_retry') || '').includes('Retry Me')")
    page.evaluate(f"touchpath.load({{host: '{stack.collector}', autoPage: false}})")
    found = wait_for(lambda: stack.events(lambda e: e.get("event") == "Retry Me"))
    assert found[0]["properties"] == {"n": 1}
    page.wait_for_function("!localStorage.getItem('tp_retry')")
    page.close()


def _analytics_next() -> Path:
    dist = CACHE / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
    if not (dist / "index.js").exists():
        failed = npm_install(CACHE, f"@segment/analytics-next@{ANALYTICS_NEXT}")
        if failed:
            pytest.skip(f"@segment/analytics-next could not be installed: {failed}")
    return dist


AJS_PAGE = """<!doctype html><html><head><title>analytics-next</title>
<script src="/ajs/index.js"></script>
<script>
AnalyticsNext.AnalyticsBrowser.load({{writeKey: "{key}", cdnURL: "{collector}"}})
  .then(function (loaded) {{
    var analytics = loaded[0];
    window.analytics = analytics;
    return analytics.page().then(function () {{
      return analytics.track("Product Viewed", {{sku: "SKU-9"}});
    }}).then(function () {{
      return analytics.identify("ajs-user", {{email: "ajs@example.com"}});
    }}).then(function () {{ window.ajsDone = analytics.user().anonymousId(); }});
  }}).catch(function (e) {{ window.ajsError = String(e); }});
</script></head><body>analytics-next</body></html>"""


def test_segment_analytics_next_sends_to_the_collector(
    browser: Any, web_root: tuple[Path, str], stack: Stack, artifacts: Path
) -> None:
    root, site = web_root
    dist = _analytics_next()
    shutil.copytree(dist, root / "ajs", dirs_exist_ok=True)
    (root / "ajs.html").write_text(AJS_PAGE.format(key=WRITE_KEY, collector=stack.collector))
    page = browser.new_page()
    page.goto(f"{site}/ajs.html")
    page.wait_for_function("window.ajsDone || window.ajsError", timeout=20_000)
    assert page.evaluate("window.ajsError || null") is None
    anonymous_id = page.evaluate("window.ajsDone")
    mine = wait_for(
        lambda: _at_least(stack.events(lambda e: e.get("anonymousId") == anonymous_id), 3)
    )
    assert {e["type"] for e in mine} == {"page", "track", "identify"}
    assert all(e["context"]["library"]["name"] == "analytics.js" for e in mine)
    identify = next(e for e in mine if e["type"] == "identify")
    assert identify["userId"] == "ajs-user" and identify["traits"]["email"] == "ajs@example.com"
    customer = wait_for(lambda: stack.customer("ajs@example.com", "email"))
    assert {("anonymous_id", anonymous_id), ("user_id", "ajs-user")} <= {
        (i["type"], i["value"]) for i in customer["identities"]
    }
    page.screenshot(path=str(artifacts / "analytics-next.png"))
    page.close()
