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


@pytest.mark.parametrize(
    ("module", "prefix", "line", "channel"),
    [
        ("segment.analytics", "segpy", "0111", "web"),  # the write key's channel
        # rudder-sdk-python sends "channel": "server" at the top level of each event
        ("rudderstack.analytics", "rudpy", "0222", "server"),
    ],
)
def test_client_library(
    live: dict[str, Any], module: str, prefix: str, line: str, channel: str
) -> None:
    analytics = pytest.importorskip(module)
    errors: list[Any] = []
    client = analytics.Client(
        WRITE_KEY, host=live["collector"], on_error=lambda e, batch: errors.append(e)
    )
    send(client, scenario.calls(prefix, line))
    assert errors == []
    scenario.check(live["api"], prefix, line, channel=channel)
