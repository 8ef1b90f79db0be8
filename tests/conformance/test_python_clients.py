"""The scenario sent through the unchanged Python client libraries (segment-analytics-python,
rudder-sdk-python), batched as they batch by default, to a live collector."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.conformance import scenario
from tests.e2e.conftest import WRITE_KEY


def send(client: Any, calls: list[dict[str, Any]]) -> None:
    """Each call with the library's own method and argument names, then a flush."""
    for call in calls:
        args = {k: v for k, v in call.items() if k != "call"}
        args["timestamp"] = datetime.fromisoformat(args["timestamp"].replace("Z", "+00:00"))
        getattr(client, call["call"])(**args)
    client.flush()


@pytest.fixture(scope="module")
def errors() -> list[Any]:
    return []


def test_segment_analytics_python(live: dict[str, Any], errors: list[Any]) -> None:
    analytics = pytest.importorskip("segment.analytics")
    client = analytics.Client(
        WRITE_KEY, host=live["collector"], on_error=lambda e, batch: errors.append(e)
    )
    send(client, scenario.calls("segpy", "0111"))
    assert errors == []
    scenario.check(live["api"], "segpy", "0111", channel="web")  # the write key's channel


def test_rudder_sdk_python(live: dict[str, Any], errors: list[Any]) -> None:
    analytics = pytest.importorskip("rudderstack.analytics")
    client = analytics.Client(
        WRITE_KEY, host=live["collector"], on_error=lambda e, batch: errors.append(e)
    )
    send(client, scenario.calls("rudpy", "0222"))
    assert errors == []
    # rudder-sdk-python sends "channel": "server" at the top level of each event
    scenario.check(live["api"], "rudpy", "0222", channel="server")
