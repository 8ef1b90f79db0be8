"""The collector end to end: HTTP in, records on the real broker out."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.e2e.conftest import WRITE_KEY, read_topic


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_track_is_written_with_enrichment(collector: str, module_env: dict, bootstrap: str) -> None:
    event = {"userId": "u-1", "event": "Product Viewed", "messageId": "m-track-1",
             "timestamp": "2026-01-01T10:00:00.000Z", "sentAt": "2026-01-01T10:00:05.000Z",
             "properties": {"sku": "A1"}}
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
