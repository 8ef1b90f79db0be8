"""The collector end to end: HTTP in, records on the real broker out."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
from pathlib import Path

import httpx
import orjson
import pytest

from infra.embedded import free_port, start_tansu
from infra.kafka import ensure_topics
from tests.e2e.conftest import SERVER_KEY, WRITE_KEY, read_topic, stack_env, start_service
from touchpath.email_links import click_url
from touchpath.settings import load_settings


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_track_is_written_with_enrichment(collector: str, module_env: dict, bootstrap: str) -> None:
    event = {
        "userId": "u-1",
        "event": "Product Viewed",
        "messageId": "m-track-1",
        "timestamp": "2026-01-01T10:00:00.000Z",
        "sentAt": "2026-01-01T10:00:05.000Z",
        "properties": {"sku": "A1"},
    }
    response = httpx.post(f"{collector}/v1/track", json=event, headers=basic(WRITE_KEY))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1}
    records = [r for r in read_topic(bootstrap, module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 1)]
    match = [e for r in records for e in r["events"] if e["messageId"] == "m-track-1"]
    assert len(match) == 1
    stored = match[0]
    assert stored["type"] == "track" and stored["source"] == "website"
    assert stored["context"]["channel"] == "web"
    assert stored["originalTimestamp"] == "2026-01-01T10:00:00.000Z"
    assert stored["receivedAt"].endswith("Z")
    # skew: timestamp = receivedAt - (sentAt - originalTimestamp) = receivedAt - 5 s
    from touchpath.events import parse_time

    skew = parse_time(stored["receivedAt"], "r") - parse_time(stored["timestamp"], "t")
    assert skew.total_seconds() == pytest.approx(5.0, abs=0.002)


def topic_events(bootstrap: str, topic: str, count: int) -> dict[str, dict]:
    return {e["messageId"]: e for r in read_topic(bootstrap, topic, count) for e in r["events"]}


@pytest.mark.parametrize("kind", ["track", "identify", "page", "screen", "group", "alias"])
def test_each_endpoint_writes_its_type(
    collector: str, module_env: dict, bootstrap: str, kind: str
) -> None:
    body = {
        "userId": "u-2",
        "messageId": f"m-{kind}",
        "event": "Signed Up",
        "name": "Home",
        "groupId": "g-1",
        "previousId": "anon-previous-0001",
    }
    response = httpx.post(f"{collector}/v1/{kind}", json=body, headers=basic(WRITE_KEY))
    assert response.status_code == 200, response.text
    events = topic_events(bootstrap, module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 1)
    assert events[f"m-{kind}"]["type"] == kind


def test_body_forms_gzip_text_plain_and_write_key_in_body(
    collector: str, module_env: dict, bootstrap: str
) -> None:
    event = {"anonymousId": "anon-forms-0001", "event": "Product Viewed", "messageId": "m-gzip"}
    gz = httpx.post(
        f"{collector}/v1/track",
        content=gzip.compress(orjson.dumps(event)),
        headers={
            **basic(WRITE_KEY),
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert gz.status_code == 200, gz.text
    beacon = {
        "batch": [
            {
                "type": "page",
                "anonymousId": "anon-forms-0001",
                "messageId": "m-beacon",
                "context": {"channel": "browser"},
            }
        ],
        "writeKey": WRITE_KEY,
    }
    plain = httpx.post(
        f"{collector}/v1/batch",
        content=orjson.dumps(beacon),
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status_code == 200, plain.text
    server = httpx.post(
        f"{collector}/v1/track",
        headers=basic(SERVER_KEY),
        json={"userId": "u-srv", "event": "Order Completed", "messageId": "m-srv"},
    )
    assert server.status_code == 200
    events = topic_events(bootstrap, module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 3)
    assert events["m-gzip"]["event"] == "Product Viewed"
    assert events["m-beacon"]["context"]["channel"] == "web"  # Segment's "browser"
    assert events["m-srv"]["source"] == "backend"
    assert events["m-srv"]["context"]["channel"] == "server"  # the key's default channel


def test_message_id_is_generated_deterministically_when_missing(collector: str) -> None:
    event = {"userId": "u-3", "event": "Product Viewed", "timestamp": "2026-01-01T00:00:00Z"}
    for _ in range(2):
        assert (
            httpx.post(f"{collector}/v1/track", json=event, headers=basic(WRITE_KEY)).status_code
            == 200
        )


def test_unknown_or_missing_write_key_is_401(collector: str) -> None:
    event = {"userId": "u", "event": "x"}
    assert httpx.post(f"{collector}/v1/track", json=event).status_code == 401
    assert (
        httpx.post(f"{collector}/v1/track", json=event, headers=basic("wrong")).status_code == 401
    )
    wrong_body = httpx.post(f"{collector}/v1/track", json={**event, "writeKey": "nope"})
    assert wrong_body.status_code == 401
    assert wrong_body.headers["content-type"] == "application/problem+json"


def test_limits_are_segments(collector: str) -> None:
    big = {"userId": "u", "event": "big", "properties": {"blob": "x" * 33_000}}
    single = httpx.post(f"{collector}/v1/track", json=big, headers=basic(WRITE_KEY))
    assert single.status_code == 413 and "limit" in single.json()["detail"]
    batch = {
        "batch": [{"type": "track", "userId": "u", "event": "small"}, {"type": "track", **big}]
    }
    mixed = httpx.post(f"{collector}/v1/batch", json=batch, headers=basic(WRITE_KEY))
    assert mixed.status_code == 200
    assert [r["index"] for r in mixed.json()["rejected"]] == [1]
    huge = {
        "batch": [
            {"type": "track", "userId": "u", "event": "e", "properties": {"p": "y" * 20_000}}
            for _ in range(30)
        ]
    }
    assert (
        httpx.post(f"{collector}/v1/batch", json=huge, headers=basic(WRITE_KEY)).status_code == 413
    )
    bomb = gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")
    assert (
        httpx.post(
            f"{collector}/v1/batch",
            content=bomb,
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
        ).status_code
        == 413
    )


@pytest.mark.parametrize(
    "body,encoding", [(b"{not json", None), (b"\xff\xfe", None), (b"not gzip", "gzip"), (b"", None)]
)
def test_unreadable_bodies_are_400_with_a_reason(
    collector: str, body: bytes, encoding: str | None
) -> None:
    headers = {**basic(WRITE_KEY), **({"Content-Encoding": encoding} if encoding else {})}
    response = httpx.post(f"{collector}/v1/batch", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_mixed_batch_good_in_topic_bad_in_dead_letter(
    collector: str, module_env: dict, bootstrap: str
) -> None:
    batch = {
        "batch": [
            {"type": "track", "userId": "u-mix", "event": "Product Added", "messageId": "good-1"},
            {"type": "track", "userId": "null", "event": "junk id", "messageId": "bad-1"},
            {"type": "teleport", "userId": "u-mix", "messageId": "bad-2"},
            {"type": "track", "anonymousId": "[object Object]", "event": "x", "messageId": "bad-3"},
            {"type": "page", "anonymousId": "anon-mix-0001", "messageId": "good-2"},
            "not an object",
        ]
    }
    response = httpx.post(f"{collector}/v1/batch", json=batch, headers=basic(WRITE_KEY))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [1, 2, 3, 5]
    assert "no usable identifier" in answer["rejected"][0]["reason"]
    events = topic_events(bootstrap, module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 1)
    assert {"good-1", "good-2"} <= set(events) and not {"bad-1", "bad-2", "bad-3"} & set(events)
    dead = read_topic(bootstrap, module_env["TOUCHPATH_TOPIC_DEAD_LETTER"], 4)
    by_index = {d["index"]: d for d in dead if d.get("source") == "website"}
    assert by_index[2]["raw"]["type"] == "teleport" and "type must be" in by_index[2]["reason"]
    assert by_index[5]["raw"] == "not an object"


def test_all_bad_batch_is_400_and_still_dead_lettered(collector: str) -> None:
    batch = {"batch": [{"type": "track", "event": "no identifier"}]}
    response = httpx.post(f"{collector}/v1/batch", json=batch, headers=basic(WRITE_KEY))
    assert response.status_code == 400
    assert response.json()["rejected"][0]["index"] == 0


def test_cors_preflight_allows_browsers(collector: str) -> None:
    response = httpx.options(
        f"{collector}/v1/batch",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://shop.example")


def test_broker_down_is_503_fast_and_recovers(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    port = free_port()
    broker = start_tansu(port, run_dir)
    env = stack_env(f"127.0.0.1:{port}", redis_url, TOUCHPATH_EMAIL_LINK_KEY="outage-key")
    child = start_service("collector", env, run_dir)
    url = f"http://127.0.0.1:{child.port}"
    event = {"userId": "u-outage", "event": "Product Viewed"}
    link = click_url(
        url, b"outage-key", recipient="a@b.co", campaign="c", message="m", url="https://x.example/"
    )
    try:
        assert (
            httpx.post(f"{url}/v1/track", json=event, headers=basic(WRITE_KEY)).status_code == 200
        )
        broker.kill()
        started = time.monotonic()
        down = httpx.post(f"{url}/v1/track", json=event, headers=basic(WRITE_KEY), timeout=10)
        elapsed = time.monotonic() - started
        assert down.status_code == 503 and down.headers["retry-after"]
        assert elapsed < 2.5
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
        clicked = httpx.get(link, timeout=10)  # the person still gets their page
        assert clicked.status_code == 302 and clicked.headers["location"] == "https://x.example/"
        broker = start_tansu(port, run_dir)  # memory storage: the topics must be recreated
        ensure_topics(
            load_settings(**{k.removeprefix("TOUCHPATH_").lower(): v for k, v in env.items()})
        )
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            status = httpx.post(
                f"{url}/v1/track", json=event, headers=basic(WRITE_KEY), timeout=10
            ).status_code
            time.sleep(0.2)
        assert status == 200
    finally:
        child.stop()
        broker.stop()


def test_rate_limits_answer_429_with_retry_after(
    bootstrap: str, redis_url: str, run_dir: Path
) -> None:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_RATE_LIMIT_PER_IP="5")
    child = start_service("collector", env, run_dir)
    url = f"http://127.0.0.1:{child.port}/v1/track"
    try:
        with httpx.Client(headers=basic(WRITE_KEY)) as client:
            codes = [
                client.post(url, json={"userId": "u", "event": "e"}).status_code for _ in range(30)
            ]
            assert codes.count(200) >= 5 and 429 in codes
            limited = client.post(url, json={"userId": "u", "event": "e"})
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            # every other route too: email links, tool callbacks, analytics.js settings
            base = f"http://127.0.0.1:{child.port}"
            for path in (
                "/v1/email/click/x",
                "/v1/webhooks/intercom/support",
                f"/v1/projects/{WRITE_KEY}/settings",
                "/v1/touchpath.js",
            ):
                send = client.post if "webhooks" in path else client.get
                codes = [send(base + path).status_code for _ in range(30)]
                assert 429 in codes, (path, codes)
    finally:
        child.stop()


def test_concurrent_requests_share_records_and_each_is_acknowledged(
    collector: str, module_env: dict, bootstrap: str
) -> None:
    """Group commit: requests of one event-loop turn share a record; none is lost or merged
    across sources."""

    async def post_all() -> list[int]:
        async with httpx.AsyncClient(base_url=collector, timeout=10) as client:
            calls = [
                client.post(
                    "/v1/track",
                    json={"userId": f"grp-{i}", "event": "Grouped", "messageId": f"grp-{i}"},
                    headers=basic(WRITE_KEY if i % 2 else SERVER_KEY),
                )
                for i in range(60)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(post_all()) == [200] * 60
    records = read_topic(bootstrap, module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 10_000, 5)
    grouped = [r for r in records if any(e["messageId"].startswith("grp-") for e in r["events"])]
    ids = [e["messageId"] for r in grouped for e in r["events"]]
    assert sorted(ids) == sorted(f"grp-{i}" for i in range(60))  # each exactly once
    for record in grouped:  # one source per record
        assert {e["source"] for e in record["events"]} == {record["source"]}
    assert len(grouped) < 60


def test_tracker_script_and_analytics_js_settings(collector: str) -> None:
    script = httpx.get(f"{collector}/v1/touchpath.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert b"ajs_anonymous_id" in script.content
    again = httpx.get(
        f"{collector}/v1/touchpath.js", headers={"if-none-match": script.headers["etag"]}
    )
    assert again.status_code == 304
    settings = httpx.get(f"{collector}/v1/projects/{WRITE_KEY}/settings").json()
    host = collector.removeprefix("http://")
    assert settings["integrations"]["Segment.io"]["apiHost"] == f"{host}/v1"
    assert settings["integrations"]["Segment.io"]["protocol"] == "http"
    assert httpx.get(f"{collector}/v1/projects/wk_unknown/settings").status_code == 404
