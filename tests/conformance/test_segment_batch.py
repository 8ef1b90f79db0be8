"""The batch example of Segment's HTTP Tracking API spec (a stack of its own: it names the
userId of the other examples with another person's traits), with its shared context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import WRITE_KEY, wait_for

BATCH = orjson.loads((Path(__file__).parent / "segment_spec_batch.json").read_bytes())


def test_batch_example(live: dict[str, Any]) -> None:
    response = httpx.post(f"{live['collector']}/v1/batch", json=BATCH, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 4
    api = live["api"]
    for event in BATCH["batch"][::2]:
        user, traits = event["userId"], event["traits"]
        person = wait_for(
            lambda u=user: (c := api.customer(u)) and c["counts"]["events"] == 2 and c
        )
        assert person["traits"] == traits
        assert api.customer(traits["email"], "email")["customer_id"] == person["customer_id"]
        played = [e for e in api.journey(user) if e["type"] == "track"]
        assert [e["event"] for e in played] == ["Song Played"]
        assert played[0]["at"] == "2012-12-02T00:30:12.984Z"
    jake, cindy = api.customer("019mr8mf4r"), api.customer("971mj8mk7p")
    assert jake["customer_id"] != cindy["customer_id"]
