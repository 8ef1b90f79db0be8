"""Fuzz and property tests of the collector's parsers: every bad input gets a clear 4xx or a
dead-letter record, never a 5xx, and never changes anything else in the batch or the store."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.body import BodyError, decode_body
from infra.embedded import Child
from store.keys import Keys
from tests.e2e.conftest import WRITE_KEY, read_topic, stack_env, start_service, wait_for
from touchpath.events import IngestContext, InvalidEvent, normalize_event
from touchpath.identifiers import JUNK_VALUES, identifiers_of, is_junk

CTX = IngestContext(source="fuzz", default_channel="web", received_at=datetime.now(UTC))
JUNK = sorted(JUNK_VALUES | {"0", "-1", "000000", "[object Object]", " null ", ""})
# what orjson can hand the collector: 64-bit integers, finite floats
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
event_keys = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "name",
        "messageId",
        "timestamp",
        "sentAt",
        "properties",
        "traits",
        "context",
        "previousId",
        "groupId",
        "writeKey",
    ]
)
events = st.dictionaries(event_keys, json_values, max_size=8) | json_values


@given(st.binary(max_size=400), st.sampled_from([None, "gzip", "identity", "br", " GZIP "]))
def test_any_bytes_decode_or_get_a_4xx(raw: bytes, encoding: str | None) -> None:
    try:
        decode_body(raw, encoding, 1024)
    except BodyError as exc:
        assert exc.status in (400, 413) and exc.detail


@pytest.mark.parametrize(
    ("raw", "encoding", "code"),
    [
        (b"", None, "empty_body"),
        (b"   \n", None, "empty_body"),
        (b"\xff\xfe{}", None, "bad_json"),
        (b'{"a": "\xc3\x28"}', None, "bad_json"),
        (b"[" * 5000 + b"]" * 5000, None, "bad_json"),
        (b"not gzip", "gzip", "bad_gzip"),
        (gzip.compress(b'{"a": 1}')[:-6], "gzip", "bad_gzip"),
        (gzip.compress(b" " * 10_000), "gzip", "too_large"),
        (b"{}", "br", "bad_gzip"),
    ],
)
def test_named_bad_bodies(raw: bytes, encoding: str | None, code: str) -> None:
    with pytest.raises(BodyError) as caught:
        decode_body(raw, encoding, 4096)
    assert caught.value.code == code and caught.value.detail


@given(events)
def test_any_event_normalises_or_is_rejected_with_a_reason(raw: Any) -> None:
    try:
        event = normalize_event(raw, CTX)
    except InvalidEvent as exc:
        assert str(exc) and exc.code
        return
    found = identifiers_of(event)
    assert found, "an accepted event has an identity"
    assert not any(is_junk(i.value) for i in found)


@given(st.sampled_from(JUNK), st.sampled_from(JUNK), st.sampled_from(["track", "page", "identify"]))
def test_junk_identifiers_never_become_identities(user: str, anonymous: str, kind: str) -> None:
    raw = {
        "type": kind,
        "event": "X",
        "userId": user,
        "anonymousId": anonymous,
        "traits": {"email": user, "phone": anonymous},
        "context": {"externalIds": [{"type": "crm", "id": user}]},
    }
    with pytest.raises(InvalidEvent) as caught:
        normalize_event(raw, CTX)
    assert caught.value.code == "no_identifier"


# --- over HTTP, through a real collector, processor and Redis ---------------------------------


@pytest.fixture(scope="module")
def live(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[tuple[dict, str]]:
    env = stack_env(bootstrap, redis_url, TOUCHPATH_MAX_REQUEST_BYTES="65536")
    children: list[Child] = [start_service(n, env, run_dir) for n in ("collector", "processor")]
    yield env, f"http://127.0.0.1:{children[0].port}"
    for child in children:
        child.stop()


BAD_REQUESTS: list[tuple[bytes, dict[str, str]]] = [
    (b"", {}),
    (b"\xff\xfe\x00", {}),
    (b'{"batch": [', {}),
    (b'{"batch": "no"}', {}),
    (b'{"batch": []}', {}),
    (b"[1, 2, 3]", {}),
    (b"{" * 3000, {}),
    (b"\x1f\x8b\x08\x00garbage", {"content-encoding": "gzip"}),
    (gzip.compress(b"{" + b" " * 200_000 + b"}"), {"content-encoding": "gzip"}),
    (b'{"batch": [' + b'{"type": "track", "event": "x", "userId": "u"},' * 3000 + b"{}]}", {}),
    (
        b'{"batch": [{"type": "track", "event": "X", "userId": "null"},'
        b'{"type": "page", "anonymousId": "undefined"}, {"type": "identify", "userId": "0"},'
        b'{"type": "track", "event": "X", "anonymousId": "[object Object]"},'
        b'{"type": "track", "event": "X", "userId": "-1"}, {"type": 7}, "string", null]}',
        {},
    ),
]


def refuse_bad_requests(collector: str, write_key: str) -> None:
    """Every request of the corpus gets a 4xx problem with a reason."""
    for body, headers in BAD_REQUESTS:
        answer = httpx.post(
            f"{collector}/v1/batch",
            content=body,
            auth=(write_key, ""),
            headers={"content-type": "application/json", **headers},
            timeout=10,
        )
        assert answer.status_code in (400, 413), (body[:60], answer.status_code)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["detail"]


def test_bad_requests_get_a_4xx_and_change_nothing_in_the_store(
    live: tuple[dict, str], redis_url: str
) -> None:
    env, collector = live
    client = redis.Redis.from_url(redis_url)
    prefix = env["TOUCHPATH_REDIS_PREFIX"]
    refuse_bad_requests(collector, WRITE_KEY)
    mixed = {
        "batch": [
            {"type": "track", "event": "X", "userId": "null"},
            {"type": "track", "event": "Fuzz Sentinel", "userId": "fuzz-ok"},
            {"type": "identify", "userId": 12.5},
        ]
    }
    answer = httpx.post(f"{collector}/v1/batch", json=mixed, auth=(WRITE_KEY, ""), timeout=10)
    assert answer.json()["accepted"] == 1
    assert [r["index"] for r in answer.json()["rejected"]] == [0, 2]
    wait_for(lambda: client.exists(Keys(prefix).customer_of("user_id:fuzz-ok")))
    customers = {k.decode() for k in client.scan_iter(Keys(prefix).customer("*"))}
    assert len(customers) == 1  # the sentinel, and nothing made from the bad input
    identities = {k.decode() for k in client.scan_iter(Keys(prefix).identity("*"))}
    assert identities == {Keys(prefix).identity("user_id:fuzz-ok")}
    dead = read_topic(env["TOUCHPATH_KAFKA_BOOTSTRAP"], env["TOUCHPATH_TOPIC_DEAD_LETTER"], 12)
    reasons = [d.get("reason", "") for d in dead]
    assert len(dead) >= 12 and all(reasons)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(events, min_size=1, max_size=6), st.booleans())
def test_random_batches_never_5xx_and_every_event_is_accounted_for(
    live: tuple[dict, str], batch: list[Any], as_text: bool
) -> None:
    _, collector = live
    headers = {"content-type": "text/plain" if as_text else "application/json"}
    answer = httpx.post(
        f"{collector}/v1/batch",
        json={"batch": batch},
        auth=(WRITE_KEY, ""),
        headers=headers,
        timeout=10,
    )
    assert answer.status_code in (200, 400, 413), answer.text
    body = answer.json()
    rejected = body.get("rejected", [])
    if answer.status_code == 200:
        assert body["accepted"] + len(rejected) == len(batch)
    else:
        assert body["detail"]
    assert all(r["reason"] and r["code"] for r in rejected)
