"""The API end to end: events in through the collector, two processors, answers out of the API.

Population (event times on 2026-02-0N at 10:00 UTC, "dN"):
* ada — anonymous page d1 (campaign spring), Product Viewed d2, identify d3 (user id, email,
  phone, Intercom id, plan pro), Order Completed d4 (120.5): awareness, consideration, purchase.
* bob — page d1 on the email channel, Checkout Started d5, identify d5 (plan free): decision.
* cy — anonymous page d2; dan — anonymous page d3: awareness.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import BaseModel

from api import schemas, schemas_analytics, schemas_stages
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    READ_TOKEN,
    WRITE_KEY,
    stack_env,
    start_service,
    wait_for,
)
from touchpath.records import encode_touchpoints

READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = "2026-02-0{}T10:00:00.000Z"
WINDOW = {"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}
ADA = {"user_id": "ada", "anonymous_id": "anon-ada-1", "email": "ADA@example.com "}
ADA_PHONE, ADA_INTERCOM = "+1 (555) 010-0199", "ic-42"


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, Any]]:
    env = stack_env(bootstrap, redis_url)
    names = ("collector", "processor", "processor", "api")
    children = [start_service(name, env, run_dir) for name in names]
    urls = {c.name: f"http://127.0.0.1:{c.port}" for c in children}
    yield {"env": env, **urls}
    for child in children:
        child.stop()


def post(stack: dict[str, Any], events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        f"{stack['collector']}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, "")
    )
    assert response.status_code == 200, response.text


def get(
    stack: dict[str, Any], path: str, headers: dict[str, str] = READ, **params: Any
) -> httpx.Response:
    return httpx.get(f"{stack['api']}{path}", headers=headers, params=params)


def valid(model: type[BaseModel], response: httpx.Response) -> dict[str, Any]:
    """The answer, checked against its documented schema (extra fields forbidden)."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    model.model_validate(body)
    return body


def answer(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON of a successful answer, else None (for wait_for)."""
    return response.json() if response.is_success else None


def page(kind: str, message_id: str, day: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": message_id, "timestamp": DAY.format(day), **fields}


@pytest.fixture(scope="module")
def population(stack: dict[str, Any]) -> None:
    spring = {"campaign": {"name": "spring", "source": "google"}}
    post(
        stack,
        [
            page(
                "page", "a1", 1, anonymousId="anon-ada-1", properties={"path": "/"}, context=spring
            ),
            page("track", "a2", 2, anonymousId="anon-ada-1", event="Product Viewed"),
            page(
                "identify",
                "a3",
                3,
                anonymousId="anon-ada-1",
                userId="ada",
                traits={"email": "Ada@Example.com", "phone": ADA_PHONE, "plan": "pro"},
                context={"externalIds": [{"type": "intercom_user", "id": ADA_INTERCOM}]},
            ),
            page(
                "track",
                "a4",
                4,
                userId="ada",
                event="Order Completed",
                properties={"revenue": 120.5},
            ),
            page("page", "b1", 1, userId="bob", context={"channel": "email"}),
            page("track", "b2", 5, userId="bob", event="Checkout Started"),
            page("identify", "b3", 5, userId="bob", traits={"plan": "free"}),
            page("page", "c1", 2, anonymousId="anon-cy"),
            page("page", "d1", 3, anonymousId="anon-dan"),
        ],
    )
    wait_for(lambda: get(stack, "/v1/customers/ada/stage").json().get("stage") == "purchase")
    wait_for(lambda: get(stack, "/v1/customers/bob").json().get("traits", {}).get("plan"))
    for anonymous in ("anon-cy", "anon-dan"):
        wait_for(
            lambda a=anonymous: get(stack, f"/v1/customers/{a}", type="anonymous_id").is_success
        )
    wait_for(lambda: len(get(stack, "/v1/customers/ada").json()["identities"]) == 5)


def test_stage_by_every_kind_of_identifier(stack: dict[str, Any], population: None) -> None:
    lookups = [(value, kind) for kind, value in ADA.items()]
    lookups += [(ADA_PHONE.replace(" ", ""), "phone"), (ADA_INTERCOM, "intercom_user")]
    answers = [
        valid(schemas.StageAnswer, get(stack, f"/v1/customers/{value}/stage", type=kind))
        for value, kind in lookups
    ]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["stage"] == "purchase"
    assert answers[0]["previous_stage"] == "consideration"  # decision was skipped
    assert answers[0]["entered_at"] == "2026-02-04T10:00:00.000Z"
    cause = answers[0]["caused_by"]
    assert (
        cause["message_id"] == "a4" and cause["at"] == DAY.format(4) and cause["channel"] == "web"
    )
    assert (cause["type"], cause["event"]) == ("track", "Order Completed")  # the event, the rule:
    assert (
        cause["rule"]["stage"] == "purchase" and "Order Completed" in cause["rule"]["when"]["event"]
    )


def test_stage_as_of_a_past_time(stack: dict[str, Any], population: None) -> None:
    past = get(stack, "/v1/customers/ada/stage", as_of="2026-02-02T12:00:00Z").json()
    assert past["stage"] == "consideration" and past["previous_stage"] == "awareness"
    before = get(stack, "/v1/customers/ada/stage", as_of="2026-01-01T00:00:00Z").json()
    assert before["stage"] is None


def test_unknown_customer_is_a_404_problem(stack: dict[str, Any]) -> None:
    response = get(stack, "/v1/customers/nobody/stage")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = schemas.ProblemDoc.model_validate(response.json())
    assert (body.status, body.title, body.type) == (404, "Not Found", "about:blank")
    assert body.detail == "no customer has this user_id"  # the value is not echoed
    assert body.instance == "/v1/customers/nobody/stage"


def test_profile(stack: dict[str, Any], population: None) -> None:
    profile = valid(
        schemas.ProfileAnswer, get(stack, "/v1/customers/ada@example.com", type="email")
    )
    assert {"type": "email", "value": "ada@example.com"} in profile["identities"]
    assert {"type": "phone", "value": "+15550100199"} in profile["identities"]
    assert {"type": "intercom_user", "value": ADA_INTERCOM} in profile["identities"]
    assert profile["traits"]["plan"] == "pro"
    assert [h["stage"] for h in profile["stage_history"]] == [
        "awareness",
        "consideration",
        "purchase",
    ]
    assert profile["counts"] == {"events": 4, "by_type": {"identify": 1, "page": 1, "track": 2}}
    assert profile["channels"] == {"web": 4}
    assert (profile["orders"], profile["revenue"]) == (1, 120.5)
    assert (profile["first_seen"], profile["last_seen"]) == (DAY.format(1), DAY.format(4))
    assert profile["first_touch"] == {"at": DAY.format(1), "channel": "web", "campaign": "spring"}


def test_journey_pages_newest_first_and_filters(stack: dict[str, Any], population: None) -> None:
    first = valid(schemas.JourneyPage, get(stack, "/v1/customers/ada/journey", limit=3))
    assert [e["id"] for e in first["entries"]] == ["a4", "a3", "a2"]
    rest = get(stack, "/v1/customers/ada/journey", limit=3, cursor=first["next_cursor"]).json()
    assert [e["id"] for e in rest["entries"]] == ["a1"] and rest["next_cursor"] is None
    oldest = rest["entries"][0]
    assert oldest["campaign"] == {"name": "spring", "source": "google"}
    assert (oldest["at"], oldest["properties"]) == (DAY.format(1), {"path": "/"})
    email = get(stack, "/v1/customers/bob/journey", channel="email").json()
    assert [e["id"] for e in email["entries"]] == ["b1"]
    window = get(
        stack,
        "/v1/customers/ada/journey",
        since="2026-02-02T00:00:00Z",
        until="2026-02-03T23:00:00Z",
    ).json()
    assert [e["id"] for e in window["entries"]] == ["a3", "a2"]
    assert get(stack, "/v1/customers/ada/journey", cursor="forged").status_code == 400


def test_stages_and_segments(stack: dict[str, Any], population: None) -> None:
    stages = valid(schemas_stages.StageList, get(stack, "/v1/stages"))["stages"]
    assert [s["stage"] for s in stages] == [
        "awareness",
        "consideration",
        "decision",
        "purchase",
        "post-purchase",
    ]
    assert [s["customers"] for s in stages] == [2, 0, 1, 1, 0]
    segment = "/v1/stages/decision/customers"
    free = valid(schemas_stages.StagePage, get(stack, segment, **{"trait.plan": "free"}))
    assert [c["identities"] for c in free["customers"]] == [[{"type": "user_id", "value": "bob"}]]
    assert free["customers"][0]["entered_at"] == DAY.format(5)
    assert get(stack, segment, **{"trait.plan": "pro"}).json()["customers"] == []
    assert get(stack, segment, entered_after="2026-02-06T00:00:00Z").json()["customers"] == []
    assert len(get(stack, segment, entered_before="2026-02-06T00:00:00Z").json()["customers"]) == 1
    seen, cursor = [], None
    for _ in range(5):  # one customer per page, oldest entry first
        answer = get(stack, "/v1/stages/awareness/customers", limit=1, cursor=cursor).json()
        seen += [c["identities"][0]["value"] for c in answer["customers"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == ["anon-cy", "anon-dan"]
    assert get(stack, "/v1/stages/nirvana/customers").status_code == 404


def test_funnel(stack: dict[str, Any], population: None) -> None:
    answer = valid(schemas_analytics.FunnelAnswer, get(stack, "/v1/funnel", **WINDOW))
    stages = answer["stages"]
    assert answer["customers"] == 4
    # ada passed decision when she purchased; bob passed consideration when he decided
    assert [s["reached"] for s in stages] == [4, 2, 2, 1, 0]
    assert [s["conversion_to_next"] for s in stages] == [0.5, 1.0, 0.5, 0.0, None]
    assert stages[0]["median_seconds_to_next"] == pytest.approx(2.5 * 86400, rel=0.003)
    assert stages[1]["median_seconds_to_next"] == pytest.approx(86400, rel=0.003)  # 2 d and 0
    assert stages[2]["p90_seconds_to_next"] == pytest.approx(0.0)  # ada: both at once
    assert [s["stalled"] for s in stages] == [2, 0, 1, 1, 0]  # cy, dan; bob; ada (default 7d)
    by_channel = get(stack, "/v1/funnel", group_by="channel", **WINDOW).json()["groups"]
    assert {g["group"]: g["customers"] for g in by_channel} == {"web": 3, "email": 1}
    by_plan = get(stack, "/v1/funnel", group_by="trait.plan", **WINDOW).json()["groups"]
    assert {g["group"]: g["stages"][3]["reached"] for g in by_plan} == {
        "(none)": 0,
        "pro": 1,
        "free": 0,
    }
    email = get(stack, "/v1/funnel", channel="email", **WINDOW).json()["stages"]
    assert [s["reached"] for s in email] == [1, 1, 1, 0, 0]
    spring = get(stack, "/v1/funnel", campaign="spring", **WINDOW).json()["stages"]
    assert [s["reached"] for s in spring] == [1, 1, 1, 1, 0]
    late = get(stack, "/v1/funnel", since="2026-02-04T00:00:00Z", until=WINDOW["until"]).json()
    assert [s["reached"] for s in late["stages"]] == [0, 1, 2, 1, 0]  # bob d5, ada d4


def test_business_figures(stack: dict[str, Any], population: None) -> None:
    everything = valid(schemas_analytics.FiguresAnswer, get(stack, "/v1/metrics", **WINDOW))
    assert (everything["customers_seen"], everything["purchasers"]) == (4, 1)
    assert everything["conversion_rate"] == 0.25
    value = everything["lifetime_value"]
    assert (value["revenue"], value["per_purchasing_customer"]) == (120.5, 120.5)
    assert value["by_first_touch_channel"]["web"]["per_purchasing_customer"] == 120.5
    assert value["by_first_touch_channel"]["email"]["purchasers"] == 0
    # previous period Jan 31 to Feb 3: ada, bob, cy; still active since Feb 3: ada, bob
    recent = get(stack, "/v1/metrics", since="2026-02-03T00:00:00Z", until="2026-02-06T00:00:00Z")
    figures = recent.json()
    assert figures["previous_period"]["since"] == "2026-01-31T00:00:00.000Z"
    assert figures["retention"] == {"active_previous_period": 3, "retained": 2, "rate": 0.666667}
    assert (figures["customers_seen"], figures["conversion_rate"]) == (1, 0.0)  # dan


def test_access_control(stack: dict[str, Any]) -> None:
    anonymous = get(stack, "/v1/stages", headers={})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith(
        "Bearer"
    )
    write_key = {"Authorization": f"Bearer {WRITE_KEY}"}
    assert get(stack, "/v1/customers/ada/stage", headers=write_key).status_code == 401
    forbidden = httpx.delete(f"{stack['api']}/v1/customers/ada", headers=READ)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    invalid = get(stack, "/v1/funnel", group_by="nonsense")
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "query.group_by"
    assert httpx.get(f"{stack['api']}/openapi.json").status_code == 200


def replay_touchpoints(stack: dict[str, Any], bootstrap: str) -> int:
    """Produce every record of the touchpoint topic again, then a marker per partition."""
    topic = stack["env"]["TOUCHPATH_TOPIC_TOUCHPOINTS"]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1500)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    old = list(consumer)  # everything so far (the iterator stops after 1.5 s of silence)
    consumer.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for record in old:
        producer.send(topic, value=record.value, key=record.key, partition=record.partition)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for p in partitions:  # processed after the replayed records of its partition
        marker = {**page("page", f"marker-{p.partition}", 6, userId=f"marker-{p.partition}")}
        marker |= {"receivedAt": now, "context": {"channel": "web"}, "source": "test"}
        producer.send(topic, value=encode_touchpoints([marker], "test"), partition=p.partition)
    producer.flush()
    producer.close()
    return len(partitions)


def leftovers(client: redis.Redis, prefix: str, names: list[str]) -> list[str]:
    """Keys, fields, members or values that still name one of ``names`` (erasure markers
    aside; the outbox stream only holds changes until they are published)."""
    found = []
    for key in client.scan_iter(f"{prefix}:*"):
        kind = client.type(key)
        if ":erased:" in key or kind == "stream":
            continue
        text = [key]
        if kind == "string":
            text.append(client.get(key) or "")
        elif kind == "hash":
            text += [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "zset":  # raw: de-duplication members are binary digests
            members = client.execute_command("ZRANGE", key, 0, -1, NEVER_DECODE=True)
            text += [m.decode(errors="replace") for m in members]
        elif kind == "set":
            text += list(client.smembers(key))
        found += [f"{key}: {t}" for t in text if any(name in t for name in names)]
    return found


def test_erase_is_complete_and_replays_do_not_resurrect(
    stack: dict[str, Any], population: None, bootstrap: str, redis_client: redis.Redis
) -> None:
    customer_id = get(stack, "/v1/customers/ada/stage").json()["customer_id"]
    erased = httpx.delete(
        f"{stack['api']}/v1/customers/ADA@EXAMPLE.COM", params={"type": "email"}, headers=ADMIN
    )
    body = valid(schemas.Erased, erased)
    assert body["customer_id"] == customer_id and len(body["erased_identities"]) == 5
    names = [
        "anon-ada-1",
        "ada@example.com",
        "15550100199",
        ADA_INTERCOM,
        "user_id:ada",
        customer_id,
    ]
    prefix = stack["env"]["TOUCHPATH_REDIS_PREFIX"]
    assert leftovers(redis_client, prefix, names) == []
    for value, kind in [*((v, k) for k, v in ADA.items()), (ADA_INTERCOM, "intercom_user")]:
        assert get(stack, f"/v1/customers/{value}/stage", type=kind).status_code == 404
    assert httpx.delete(f"{stack['api']}/v1/customers/ada", headers=ADMIN).status_code == 404

    partitions = replay_touchpoints(stack, bootstrap)
    for p in range(partitions):
        wait_for(lambda p=p: get(stack, f"/v1/customers/marker-{p}/stage").is_success)
    assert get(stack, "/v1/customers/anon-ada-1/stage", type="anonymous_id").status_code == 404
    assert get(stack, "/v1/customers/ada/stage").status_code == 404
    assert leftovers(redis_client, prefix, names) == []
    assert get(stack, "/v1/customers/bob").json()["counts"]["events"] == 3  # replay de-duplicated

    post(stack, [page("track", "ada-again", 7, userId="ada", event="Product Viewed")])
    fresh = wait_for(lambda: answer(get(stack, "/v1/customers/ada")))
    assert fresh["counts"]["events"] == 1 and fresh["stage"] == "consideration"
    assert fresh["identities"] == [{"type": "user_id", "value": "ada"}]
    assert fresh["stage_history"][0]["message_id"] == "ada-again"
    assert get(stack, "/v1/customers/anon-ada-1/stage", type="anonymous_id").status_code == 404


@pytest.mark.parametrize(
    "path", ["/v1/funnel", "/v1/metrics", "/v1/satisfaction", "/v1/customers/ada/journey"]
)
def test_every_window_takes_one_instant_and_refuses_since_after_until(
    stack: dict[str, Any], population: None, path: str
) -> None:
    instant = "2026-02-04T00:00:00Z"
    assert get(stack, path, since=instant, until=instant).status_code == 200
    later = get(stack, path, since="2026-02-04T00:00:00.001Z", until=instant)
    assert later.status_code == 400
    assert later.json()["detail"] == "since must not be after until"
