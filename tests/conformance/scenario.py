"""One B2B journey, sent call by call through each client library, and what it must leave.

The calls are data (``call`` plus the client's own argument names in snake case), so every
library sends the same journey; :func:`check` asserts identities, person and account traits,
stages and channels through the API.

For a prefix ``p``: an anonymous visitor ``p-anon`` (and a second browser ``p-anon2``)
identifies as ``p-old`` with an email in odd case and a *national* UK phone, joins the account
``p-initech`` (a ``group`` call with the account's own name, billing email and plan), is
renamed to ``p-new`` (alias from a former userId), links ``p-anon2`` (alias from an anonymous
id) and buys; a colleague ``p-col`` joins the account and reaches the decision stage.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import Api
from tests.e2e.conftest import wait_for

DAY = "2026-03-0{}T10:00:00.000Z"


def calls(p: str, line: str) -> list[dict[str, Any]]:
    """The journey of prefix ``p``; ``line`` is a 4-digit phone line (``020 7946 <line>``)."""
    return [
        _at(1, call="page", anonymous_id=f"{p}-anon", name="Home", properties={"path": "/"}),
        _at(1, call="page", anonymous_id=f"{p}-anon2", name="Home", properties={"path": "/"}),
        _at(
            2,
            call="identify",
            user_id=f"{p}-old",
            anonymous_id=f"{p}-anon",
            traits={
                "email": f" {p.upper()}@Example.COM",
                "phone": f"020 7946 {line}",
                "name": "Pat",
            },
        ),
        _at(
            3,
            call="group",
            user_id=f"{p}-old",
            group_id=f"{p}-initech",
            traits={"name": "Initech", "email": f"billing@{p}.example", "plan": "enterprise"},
        ),
        _at(3, call="track", user_id=f"{p}-old", event="Product Viewed", properties={"sku": "m"}),
        _at(4, call="screen", user_id=f"{p}-old", name="Cart", properties={}),
        _at(
            4, call="group", user_id=f"{p}-col", group_id=f"{p}-initech", traits={"employees": 329}
        ),
        _at(4, call="track", user_id=f"{p}-col", event="Checkout Started", properties={}),
        _at(5, call="alias", previous_id=f"{p}-old", user_id=f"{p}-new"),
        _at(5, call="alias", previous_id=f"{p}-anon2", user_id=f"{p}-new"),
        _at(
            6, call="track", user_id=f"{p}-new", event="Order Completed", properties={"revenue": 42}
        ),
    ]


def _at(day: int, **call: Any) -> dict[str, Any]:
    return {**call, "timestamp": DAY.format(day)}


def check(api: Api, p: str, line: str, channel: str) -> None:
    """What the journey of prefix ``p`` must have left (waits until it landed)."""
    person = api.wait_stage(f"{p}-new", "purchase")
    wait_for(lambda: (api.customer(f"{p}-col") or {}).get("stage") == "decision")
    account = wait_for(lambda: (a := api.account(f"{p}-initech")) and a["members"] == 2 and a)
    me = person["customer_id"]
    # renamed: the former userId and both anonymous ids still find the customer
    for user in ("new", "old"):
        assert {"type": "user_id", "value": f"{p}-{user}"} in person["identities"]
    for value, kind in (
        (f"{p}-old", "user_id"),
        (f"{p}-anon", "anonymous_id"),
        (f"{p}-anon2", "anonymous_id"),
        (f"{p}@example.com", "email"),
        (f"  {p.upper()}@EXAMPLE.com", "email"),
        (f"+44 20 7946 {line}", "phone"),
        (f"+44207946{line}", "phone"),
        (f"020 7946 {line}", "phone"),
    ):
        found = api.customer(value, kind)
        assert found and found["customer_id"] == me, (value, kind)
    assert {"type": "phone", "value": f"+44207946{line}"} in person["identities"]
    assert person["refused_ties"] == []
    # the group call's traits are the account's, never the person's
    assert person["traits"]["name"] == "Pat" and "plan" not in person["traits"]
    assert api.customer(f"billing@{p}.example", "email") is None
    assert account["traits"] == {
        "name": "Initech",
        "email": f"billing@{p}.example",
        "plan": "enterprise",
        "employees": 329,
    }
    # the account is as far as its furthest member
    colleague = api.customer(f"{p}-col")
    assert colleague is not None and "employees" not in colleague["traits"]
    assert account["stage"] == "purchase"
    history = {h["stage"]: h["customer_id"] for h in account["stage_history"]}
    assert history["purchase"] == me and history["decision"] == colleague["customer_id"]
    assert (person["orders"], person["revenue"]) == (1, 42.0)
    assert {e["channel"] for e in api.journey(f"{p}-new")} == {channel}
