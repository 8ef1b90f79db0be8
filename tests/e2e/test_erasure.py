"""Erasure leaves nothing behind: an email and a phone are put in every place they can live
(the erased customer, a refused tie on another customer, that customer's traits, timeline,
funnel row and cluster snapshot, the Kafka outbox, the webhook outbox, deliveries waiting,
dead letters), the customer is erased by email, then every Redis key and value, every API
answer and the webhook stores are searched for any form of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from infra.embedded import Child
from store.keys import Keys
from tests.e2e.conftest import ADMIN_TOKEN, WRITE_KEY, stack_env, start_service, wait_for
from tests.e2e.test_webhooks import Receiver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = "2026-02-0{}T10:00:00.000Z"
EMAIL, PHONE = "Erase.Me@Example.com", "+44 20 7946 0958"
#: every form of the erased identifiers searched for (lower-cased text)
FORMS = (
    "erase.me@example.com",
    "erase.me",
    "442079460958",
    "7946 0958",
    "79460958",
    "erase-a",
    "anon-erase-a",
)


@pytest.fixture(scope="module")
def stack(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, Any]]:
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_WEBHOOK_MAX_ATTEMPTS="1",
        TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8,::1",  # the receiver is on loopback
    )
    names = ("collector", "processor", "api", "webhooks")
    children = {name: start_service(name, env, run_dir) for name in names}
    receiver = Receiver()
    receiver.fail["/hook"] = -1  # always 500: deliveries become dead letters
    yield {"env": env, "children": children, "receiver": receiver}
    for child in children.values():
        child.stop()
    receiver.server.shutdown()


def _url(child: Child) -> str:
    return f"http://127.0.0.1:{child.port}"


def _post(stack: dict[str, Any], *events: dict[str, Any]) -> None:
    answer = httpx.post(
        f"{_url(stack['children']['collector'])}/v1/batch",
        json={"batch": list(events)},
        auth=(WRITE_KEY, ""),
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def _event(kind: str, message_id: str, day: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": message_id, "timestamp": DAY.format(day), **fields}


def _api(stack: dict[str, Any], path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{_url(stack['children']['api'])}{path}", headers=ADMIN, params=params)


def _answers(stack: dict[str, Any]) -> str:
    """Every API answer that could show a customer, concatenated."""
    paths = [
        "/v1/customers/erase-b",
        "/v1/customers/erase-b/journey",
        "/v1/customers/erase-b/stage",
        "/v1/customers/keep-c",
        "/v1/funnel",
        "/v1/funnel?group_by=trait.email",
        "/v1/funnel?group_by=trait.phone",
        "/v1/metrics",
        "/v1/satisfaction",
        "/v1/flows",
        "/v1/subscriptions",
        "/v1/subscriptions/dead-letters",
        *(f"/v1/stages/{s}/customers" for s in ("awareness", "consideration", "purchase")),
    ]
    return "\n".join(f"{path}: {_api(stack, path).text}" for path in paths)


def _erased_lookups(stack: dict[str, Any]) -> list[int]:
    """Statuses of look-ups by the erased identifiers (their answers echo the request path in
    ``instance``, so they are checked for the status and the detail only)."""
    statuses = []
    for value, kind in ((EMAIL, "email"), (PHONE, "phone"), ("erase-a", "user_id")):
        for path in ("", "/journey", "/stage"):
            answer = _api(stack, f"/v1/customers/{value}{path}", type=kind)
            assert not _found(answer.json()["detail"])
            statuses.append(answer.status_code)
    return statuses


def _redis_dump(client: redis.Redis, prefix: str) -> str:
    """Every key under the prefix and everything it holds, as text (SCAN + each type)."""
    parts: list[str] = []
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        parts.append(repr(key))
        kind = client.type(key)
        if kind == b"string":
            parts.append(repr(client.get(key)))
        elif kind == b"hash":
            parts.append(repr(client.hgetall(key)))
        elif kind == b"zset":
            parts.append(repr(client.zrange(key, 0, -1, withscores=True)))
        elif kind == b"set":
            parts.append(repr(client.smembers(key)))
        elif kind == b"list":
            parts.append(repr(client.lrange(key, 0, -1)))
        elif kind == b"stream":
            parts.append(repr(client.xrange(key)))
            groups = client.xinfo_groups(key)
            parts.append(repr(groups))
        else:
            raise AssertionError(f"unexpected type {kind!r} of {key!r}")
    return "\n".join(parts)


def _found(text: str) -> list[str]:
    lower = text.lower()
    return [form for form in FORMS if form in lower]


def test_erasure_leaves_no_form_of_the_identifiers_anywhere(stack: dict[str, Any]) -> None:
    env = stack["env"]
    client = redis.Redis.from_url(env["TOUCHPATH_REDIS_URL"])
    prefix = env["TOUCHPATH_REDIS_PREFIX"]
    api = _url(stack["children"]["api"])
    subscribed = httpx.post(
        f"{api}/v1/subscriptions", json={"url": stack["receiver"].url + "/hook"}, headers=ADMIN
    )
    assert subscribed.status_code == 201, subscribed.text

    a_ids = {"userId": "erase-a", "anonymousId": "anon-erase-a"}
    _post(
        stack,
        _event("page", "a-1", 1, anonymousId="anon-erase-a", properties={"path": "/"}),
        _event("identify", "a-2", 2, **a_ids, traits={"email": EMAIL, "phone": PHONE}),
        _event(
            "track",
            "a-3",
            2,
            userId="erase-a",
            event="NPS Survey Answered",
            properties={"score": 9},
        ),
        _event("track", "a-4", 3, userId="erase-a", event="Product Viewed"),
        # B names A's email and phone (other case, other phone form): a refused tie
        _event(
            "identify",
            "b-1",
            4,
            userId="erase-b",
            traits={"email": EMAIL.upper(), "phone": "0044 20 7946 0958", "plan": "pro"},
        ),
        _event(
            "page",
            "b-2",
            4,
            userId="erase-b",
            properties={"url": f"https://shop.example/?contact={EMAIL.lower()}"},
        ),
        _event("identify", "c-1", 4, userId="keep-c", traits={"email": "keep.me@example.com"}),
    )

    def refused() -> bool:
        found = _api(stack, "/v1/customers/erase-b")
        return found.is_success and bool(found.json().get("refused_ties"))

    wait_for(refused)
    wait_for(lambda: "erase-a" in _api(stack, "/v1/subscriptions/dead-letters").text)
    stack["children"]["webhooks"].stop()  # from now on changes wait in the webhook outbox
    replayed = httpx.post(f"{api}/v1/subscriptions/dead-letters/replay", json={}, headers=ADMIN)
    assert replayed.is_success and replayed.json()["replayed"]  # a delivery queued again
    _post(stack, _event("track", "a-5", 5, userId="erase-a", event="Order Completed"))
    outbox = Keys(prefix).webhook_outbox
    wait_for(lambda: "purchase" in str(client.xrange(outbox)))

    before = _redis_dump(client, prefix) + _answers(stack)
    assert set(_found(before)) == set(FORMS)  # the searches do see every form before

    erased = httpx.delete(f"{api}/v1/customers/{EMAIL}", params={"type": "email"}, headers=ADMIN)
    assert erased.status_code == 200, erased.text

    assert _found(_redis_dump(client, prefix)) == []
    assert [line for line in _answers(stack).split("\n") if _found(line)] == []
    assert set(_erased_lookups(stack)) == {404}
    b = _api(stack, "/v1/customers/erase-b").json()
    assert b["refused_ties"] == [] and b["traits"] == {"plan": "pro"}
    assert [i["value"] for i in b["identities"]] == ["erase-b"]
    assert "keep.me@example.com" in _redis_dump(client, prefix)  # others are untouched
    markers = [k for k in client.scan_iter(Keys(prefix).erased("*"))]
    assert len(markers) == 4  # user id, email, phone, anonymous id: keyed hashes
