"""The examples of Segment's HTTP Tracking API spec, sent as documented to a live collector:
what they must leave behind (identities, person and account traits, stages), not just 200s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import WRITE_KEY, wait_for

HERE = Path(__file__).parent
DOCUMENTED = orjson.loads((HERE / "segment_spec.json").read_bytes())
SPEC = {endpoint: body for endpoint, body in DOCUMENTED.items() if endpoint[0] != "_"}
USER = "019mr8mf4r"


@pytest.fixture(scope="module")
def sent(live: dict[str, Any]) -> dict[str, Any]:
    """Each example POSTed to its endpoint, in the spec's order; waits until all landed."""
    for endpoint, body in SPEC.items():
        response = httpx.post(f"{live['collector']}/v1/{endpoint}", json=body, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, (endpoint, response.text)
        assert response.json()["success"] is True
    api = live["api"]
    wait_for(lambda: len(api.journey(USER)) == len(SPEC) and api.account("8e9df332ac"))
    wait_for(lambda: api.customer("39239-239239-239239-23923", "anonymous_id"))
    return live


def test_identify_sets_the_persons_traits(sent: dict[str, Any]) -> None:
    person = sent["api"].customer(USER)
    assert person["traits"] == {
        "email": "pgibbons@example.com",
        "name": "Peter Gibbons",  # not the group's "Initech"
        "industry": "Technology",
    }
    by_email = sent["api"].customer("PGibbons@Example.com", "email")
    assert by_email["customer_id"] == person["customer_id"]


def test_group_traits_are_the_accounts(sent: dict[str, Any]) -> None:
    api = sent["api"]
    account = api.account("8e9df332ac")
    assert account["traits"] == SPEC["group"]["traits"]
    assert account["members"] == 1
    person = api.customer(USER)
    assert "plan" not in person["traits"] and "employees" not in person["traits"]
    members = api.get("/v1/accounts/8e9df332ac/members").json()["members"]
    assert [m["customer_id"] for m in members] == [person["customer_id"]]


def test_track_page_screen_land_in_the_journey_and_stage(sent: dict[str, Any]) -> None:
    api = sent["api"]
    entries = {e["type"]: e for e in api.journey(USER)}
    assert set(entries) == set(SPEC)
    assert entries["track"]["event"] == "Item Purchased"
    assert entries["track"]["properties"]["revenue"] == 14.99
    assert entries["track"]["at"] == "2012-12-02T00:30:12.984Z"
    person = api.customer(USER)
    assert person["stage"] == "awareness"  # page and screen; the spec's track is no order event
    assert person["first_seen"] == "2012-12-02T00:30:08.276Z"
    assert api.account("8e9df332ac")["stage"] == "awareness"


def test_alias_from_an_anonymous_id_links_it(sent: dict[str, Any]) -> None:
    api = sent["api"]
    person = api.customer(USER)
    linked = api.customer("39239-239239-239239-23923", "anonymous_id")
    assert linked["customer_id"] == person["customer_id"]
    assert {"type": "anonymous_id", "value": "39239-239239-239239-23923"} in person["identities"]
    assert person["identities"][0] == {"type": "user_id", "value": USER}
    assert person["refused_ties"] == []
