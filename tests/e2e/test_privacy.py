"""Keyed hashing of emails and phones, and the CORS allow-list, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from infra.embedded import Child
from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, read_topic, stack_env, start_service, wait_for

HASH_KEY = "e2e-identifier-hash-key"
ALLOWED = "https://shop.example"


@pytest.fixture(scope="module")
def hashed_stack(
    bootstrap: str, redis_url: str, run_dir: Path
) -> Iterator[tuple[dict, list[Child]]]:
    env = stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_IDENTIFIER_HASH_KEY=HASH_KEY,
        TOUCHPATH_CORS_ORIGINS=f"{ALLOWED},https://www.shop.example",
        TOUCHPATH_LOG_LEVEL="DEBUG",  # the most the services ever log
    )
    children = [start_service(n, env, run_dir) for n in ("collector", "processor", "api")]
    yield env, children
    for child in children:
        child.stop()


def test_emails_and_phones_are_stored_hashed_and_found_by_clear_value(
    hashed_stack: tuple[dict, list[Child]], redis_url: str
) -> None:
    env, children = hashed_stack
    collector, _, api = (f"http://127.0.0.1:{c.port}" for c in children)
    batch = {
        "batch": [
            {"type": "page", "anonymousId": "anon-hash-1", "properties": {"path": "/pricing"}},
            {
                "type": "identify",
                "anonymousId": "anon-hash-1",
                "traits": {"email": "Secret.Person@Example.com", "phone": "+44 20 7946 0958"},
            },
            {
                "type": "track",
                "event": "Email Link Clicked",
                "properties": {"email": "secret.person@example.com"},
                "context": {"externalIds": [{"type": "phone", "id": "+442079460958"}]},
            },
        ]
    }
    answer = httpx.post(f"{collector}/v1/batch", json=batch, auth=(WRITE_KEY, ""), timeout=10)
    assert answer.status_code == 200 and answer.json()["accepted"] == 3
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}

    def by_email() -> dict | None:
        found = httpx.get(
            f"{api}/v1/customers/SECRET.person@example.com",
            params={"type": "email"},
            headers=headers,
            timeout=5,
        )
        return found.json() if found.status_code == 200 else None

    customer = wait_for(by_email)
    kinds = {i["type"] for i in customer["identities"]}
    assert {"anonymous_id", "email", "phone"} <= kinds  # one customer, stitched on hashes
    assert all(
        i["value"].startswith("hmac-")
        for i in customer["identities"]
        if i["type"] != "anonymous_id"
    )
    by_phone = httpx.get(
        f"{api}/v1/customers/+44 20 7946 0958", params={"type": "phone"}, headers=headers, timeout=5
    )
    assert by_phone.status_code == 200 and by_phone.json()["customer_id"] == customer["customer_id"]

    client = redis.Redis.from_url(redis_url)
    prefix = env["TOUCHPATH_REDIS_PREFIX"]
    dump = b"".join(_everything(client, prefix))
    assert b"anon-hash-1" in dump  # the scan does see the customer's data
    for clear in (b"secret.person", b"Secret.Person", b"7946", b"0958"):
        assert clear not in dump
    records = read_topic(env["TOUCHPATH_KAFKA_BOOTSTRAP"], env["TOUCHPATH_TOPIC_TOUCHPOINTS"], 1)
    assert b"secret.person" not in str(records).encode().lower()


def _everything(client: redis.Redis, prefix: str) -> Iterator[bytes]:
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        yield key
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                yield field + value
        elif kind == b"zset":
            yield b"".join(client.zrange(key, 0, -1))
        elif kind == b"set":
            yield b"".join(client.smembers(key))
        elif kind == b"stream":
            yield str(client.xrange(key)).encode()


def test_cors_answers_only_configured_origins(hashed_stack: tuple[dict, list[Child]]) -> None:
    _, children = hashed_stack
    collector = f"http://127.0.0.1:{children[0].port}"
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    allowed = httpx.options(f"{collector}/v1/batch", headers={"origin": ALLOWED, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    other = httpx.options(
        f"{collector}/v1/batch", headers={"origin": "https://evil.example", **preflight}
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.post(
        f"{collector}/v1/track",
        json={"type": "track", "event": "X", "userId": "cors-1"},
        auth=(WRITE_KEY, ""),
        headers={"origin": "https://evil.example"},
    )
    assert simple.status_code == 200  # server-side callers are unaffected, browsers are refused
    assert "access-control-allow-origin" not in simple.headers


def test_secrets_and_clear_identifiers_never_reach_the_logs(
    hashed_stack: tuple[dict, list[Child]],
) -> None:
    _, children = hashed_stack
    collector, _, api = (f"http://127.0.0.1:{c.port}" for c in children)
    event = {"type": "identify", "userId": "log-1", "traits": {"email": "Log.Secret@Example.com"}}
    assert httpx.post(f"{collector}/v1/identify", json=event, auth=(WRITE_KEY, "")).is_success
    assert httpx.post(f"{collector}/v1/track", json=event, auth=("wk_wrong", "")).status_code == 401
    for token in (READ_TOKEN, "tok_wrong_guess"):
        httpx.get(f"{api}/v1/stages", headers={"Authorization": f"Bearer {token}"})
    wait_for(
        lambda: (
            httpx.get(
                f"{api}/v1/customers/log-1", headers={"Authorization": f"Bearer {READ_TOKEN}"}
            ).status_code
            == 200
        )
    )
    logs = "".join(Path(c.log_path).read_text(errors="replace") for c in children if c.log_path)
    assert logs.strip(), "DEBUG logging wrote nothing: the check would prove nothing"
    for secret in (WRITE_KEY, READ_TOKEN, "tok_wrong_guess", HASH_KEY, "log.secret@example"):
        assert secret.lower() not in logs.lower(), secret
