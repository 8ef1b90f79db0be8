"""schemathesis against the collector's and the API's own OpenAPI specs: no 5xx, and no
response that breaks its documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.conftest import READ_TOKEN, WRITE_KEY, stack_env, start_service
from touchpath.signatures import new_secret

CHECKS = [not_a_server_error, response_schema_conformance]
ENDLESS = "/v1/stream/"


def _schema(name: str, env: dict[str, str], run_dir: Path) -> Iterator[schemathesis.Schema]:
    child = start_service(name, env, run_dir)
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{child.port}/openapi.json")
    child.stop()


@pytest.fixture(scope="module")
def fuzz_env(bootstrap: str, redis_url: str) -> dict[str, str]:
    # every channel configured, so generated requests reach the signature checks and parsers
    return stack_env(
        bootstrap,
        redis_url,
        TOUCHPATH_EMAIL_LINK_KEY="fuzz-link-key",
        TOUCHPATH_MAILGUN_SIGNING_KEY="fuzz-mailgun",
        TOUCHPATH_INTERCOM_CLIENT_SECRET="fuzz-intercom",
        TOUCHPATH_ZENDESK_SIGNING_SECRET="fuzz-zendesk",
        TOUCHPATH_CHAT_WEBHOOK_SECRET=new_secret(),
        TOUCHPATH_IDENTIFIER_HASH_KEY="fuzz-hash",
    )


@pytest.fixture(scope="module")
def collector_schema(fuzz_env: dict[str, str], run_dir: Path) -> Iterator[schemathesis.Schema]:
    yield from _schema("collector", fuzz_env, run_dir)


@pytest.fixture(scope="module")
def api_schema(fuzz_env: dict[str, str], run_dir: Path) -> Iterator[schemathesis.Schema]:
    yield from _schema("api", fuzz_env, run_dir)


def fuzz(schema: schemathesis.Schema, **call: object) -> int:
    """Run generated cases against every operation; returns how many cases ran."""
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(ENDLESS):
            continue  # a live event stream never ends: nothing to validate per request

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal ran
            ran += 1
            case.call_and_validate(checks=CHECKS, **call)

        check()
    return ran


def test_collector_never_fails_on_generated_input(collector_schema: schemathesis.Schema) -> None:
    assert fuzz(collector_schema, auth=(WRITE_KEY, "")) > 100


def test_api_never_fails_on_generated_input(api_schema: schemathesis.Schema) -> None:
    assert fuzz(api_schema, headers={"Authorization": f"Bearer {READ_TOKEN}"}) > 100
