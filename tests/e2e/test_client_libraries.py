"""Real, unchanged analytics clients against a live collector: they report why a request was
refused (the problem body's ``code``/``message``) and do not retry a 4xx (issue #18)."""

from __future__ import annotations

import logging
import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.e2e.conftest import SERVER_KEY, read_topic, wait_for

pytestmark = pytest.mark.e2e


class AnalyticsClient(Protocol):
    def track(self, *args: Any, **kwargs: Any) -> Any: ...
    def flush(self) -> None: ...
    def shutdown(self) -> None: ...


Factory = Callable[..., AnalyticsClient]
CLIENTS: dict[str, tuple[Factory, str]] = {
    "segment": (SegmentClient, "segment"),
    "rudder": (RudderClient, "rudderstack"),
}


def batch_requests(collector: str, status: int) -> float:
    """How many /v1/batch requests the collector answered with ``status`` so far."""
    with urllib.request.urlopen(f"{collector}/metrics") as response:
        text = response.read().decode()
    labels = rf'route="/v1/batch",status="{status}"'
    pattern = rf"^touchpath_collector_requests_total\{{{labels}\}} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(params=sorted(CLIENTS))
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def errors() -> list[Exception]:
    return []


@pytest.fixture
def make_client(
    client_name: str, collector: str, errors: list[Exception]
) -> Iterator[Callable[[str], AnalyticsClient]]:
    """A client of the named library sending to the collector, its errors into ``errors``."""
    made: list[AnalyticsClient] = []

    def make(write_key: str) -> AnalyticsClient:
        factory, _ = CLIENTS[client_name]
        client = factory(
            write_key,
            host=collector,
            on_error=lambda exc, _batch: errors.append(exc),
            max_retries=2,  # a wrongly retried 4xx shows as 3 requests within seconds
            upload_interval=0.05,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown()


@pytest.mark.parametrize(
    ("write_key", "user_id", "status", "code", "reason"),
    [
        ("wk_not_a_key", "ada", 401, "unauthorized", "write key"),
        (SERVER_KEY, "u\u001fx", 400, "no_valid_event", "no event in the batch is valid"),
    ],
)
def test_client_reports_the_reason_and_does_not_retry(
    client_name: str,
    make_client: Callable[[str], AnalyticsClient],
    errors: list[Exception],
    collector: str,
    caplog: pytest.LogCaptureFixture,
    write_key: str,
    user_id: str,
    status: int,
    code: str,
    reason: str,
) -> None:
    before = batch_requests(collector, status)
    client = make_client(write_key)
    with caplog.at_level(logging.ERROR, logger=CLIENTS[client_name][1]):
        client.track(user_id=user_id, event="Signed Up")
        client.flush()
        wait_for(lambda: errors, timeout_s=15)
    error = errors[0]
    assert getattr(error, "status", None) == status, repr(error)
    assert getattr(error, "code", None) == code, repr(error)
    assert reason in str(error), str(error)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert reason in logged and "Unknown error" not in logged, logged
    assert batch_requests(collector, status) - before == 1


def test_rudder_top_level_channel_still_accepted(
    make_client: Callable[[str], AnalyticsClient],
    client_name: str,
    errors: list[Exception],
    collector: str,
    module_env: dict[str, str],
) -> None:
    """rudder-sdk-python puts ``"channel": "server"`` at the top level of every event."""
    user = f"chan-{uuid.uuid4().hex[:8]}"
    client = make_client(SERVER_KEY)
    client.track(user_id=user, event="Order Completed")
    client.flush()
    topic = module_env["TOUCHPATH_TOPIC_TOUCHPOINTS"]
    bootstrap = module_env["TOUCHPATH_KAFKA_BOOTSTRAP"]

    def landed() -> list[dict[str, Any]]:
        records = read_topic(bootstrap, topic, 1, timeout_s=2)
        return [e for r in records for e in r["events"] if e.get("userId") == user]

    found = wait_for(landed)
    assert not errors, errors
    assert found[0]["context"]["channel"] == "server"
