"""Accounts (B2B journeys) end to end: group calls in through the collector, two processors,
accounts out of the API (issue #14).

Population (event times on 2026-02-0N at 10:00 UTC, "dN"):
* acme — ada (page d1, group d2 {name, plan pro, billing email}, Order Completed d4: purchase)
  and bea (page d1, Product Viewed d3, group d3 {plan enterprise, employees}: consideration).
* globex — two anonymous visitors who each sent a group call with the same billing email
  (the issue's reproduction): one only viewed a page, the other bought.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api import schemas_accounts, schemas_analytics, schemas_stages
from tests.e2e.conftest import wait_for
from tests.e2e.test_api import ADMIN, WINDOW, get, page, post, stack, valid

__all__ = ["stack"]  # the module-scoped stack fixture of test_api, started anew here


def _account(stack: dict[str, Any], group_id: str) -> dict[str, Any] | None:
    response = get(stack, f"/v1/accounts/{group_id}")
    return response.json() if response.is_success else None


@pytest.fixture(scope="module")
def accounts(stack: dict[str, Any]) -> None:
    acme = {"name": "Acme Inc.", "plan": "pro", "email": "billing@acme.com"}
    globex = {"name": "Globex", "email": "billing@globex.com", "phone": "+44 20 7946 0123"}
    post(
        stack,
        [
            page("page", "ada1", 1, userId="ada-acme", properties={"path": "/"}),
            page("group", "ada2", 2, userId="ada-acme", groupId="acme", traits=acme),
            page("identify", "ada3", 2, userId="ada-acme", traits={"name": "Ada"}),
            page("track", "ada4", 4, userId="ada-acme", event="Order Completed"),
            page("page", "bea1", 1, userId="bea-acme"),
            page("track", "bea2", 3, userId="bea-acme", event="Product Viewed"),
            page(
                "group",
                "bea3",
                3,
                userId="bea-acme",
                groupId="acme",
                traits={"plan": "enterprise", "employees": 250},
            ),
            page("group", "gx1", 1, anonymousId="anon-gx-1", groupId="globex", traits=globex),
            page("page", "gx2", 1, anonymousId="anon-gx-1"),
            page("group", "gy1", 2, anonymousId="anon-gx-2", groupId="globex", traits=globex),
            page("track", "gy2", 3, anonymousId="anon-gx-2", event="Order Completed"),
        ],
    )
    for group_id, members in (("acme", 2), ("globex", 2)):
        wait_for(
            lambda g=group_id, n=members: (
                (a := _account(stack, g)) and a["members"] == n and a["stage"] == "purchase"
            )
        )
    wait_for(lambda: (_account(stack, "acme") or {}).get("traits", {}).get("employees"))


def test_account_traits_stage_and_history(stack: dict[str, Any], accounts: None) -> None:
    acme = valid(schemas_accounts.AccountAnswer, get(stack, "/v1/accounts/acme"))
    # per trait, the latest group call of any member: bea's (d3) plan over ada's (d2)
    assert acme["traits"] == {
        "name": "Acme Inc.",
        "plan": "enterprise",
        "email": "billing@acme.com",
        "employees": 250,
    }
    ada = get(stack, "/v1/customers/ada-acme").json()
    bea = get(stack, "/v1/customers/bea-acme").json()
    assert (ada["stage"], bea["stage"]) == ("purchase", "consideration")
    # the account's stage is the furthest of its members', entered when ada bought
    assert (acme["stage"], acme["entered_at"], acme["members"]) == (
        "purchase",
        "2026-02-04T10:00:00.000Z",
        2,
    )
    history = {h["stage"]: h for h in acme["stage_history"]}
    assert list(history) == ["awareness", "consideration", "purchase"]
    assert history["consideration"]["customer_id"] == bea["customer_id"]
    assert history["purchase"] == {
        "stage": "purchase",
        "entered_at": "2026-02-04T10:00:00.000Z",
        "message_id": "ada4",
        "channel": "web",
        "customer_id": ada["customer_id"],
    }
    assert history["awareness"]["message_id"] in ("ada1", "bea1")  # both on d1


def test_group_traits_are_the_accounts_not_the_persons(
    stack: dict[str, Any], accounts: None
) -> None:
    ada = get(stack, "/v1/customers/ada-acme").json()
    assert ada["traits"] == {"name": "Ada"}  # not "Acme Inc.", no plan, no billing email
    assert {i["type"] for i in ada["identities"]} == {"user_id"}
    assert get(stack, "/v1/customers/billing@acme.com", type="email").status_code == 404


def test_one_billing_email_does_not_merge_two_visitors(
    stack: dict[str, Any], accounts: None
) -> None:
    first = get(stack, "/v1/customers/anon-gx-1", type="anonymous_id").json()
    second = get(stack, "/v1/customers/anon-gx-2", type="anonymous_id").json()
    assert first["customer_id"] != second["customer_id"]
    assert (first["stage"], second["stage"]) == ("awareness", "purchase")
    globex = get(stack, "/v1/accounts/globex").json()
    assert (globex["stage"], globex["members"]) == ("purchase", 2)
    assert globex["traits"]["phone"] == "+44 20 7946 0123"  # the account's, as sent


def test_members_page_by_customer_id(stack: dict[str, Any], accounts: None) -> None:
    first = valid(
        schemas_accounts.AccountMembersPage, get(stack, "/v1/accounts/acme/members", limit=1)
    )
    assert len(first["members"]) == 1 and first["next_cursor"]
    rest = get(stack, "/v1/accounts/acme/members", limit=1, cursor=first["next_cursor"]).json()
    assert rest["next_cursor"] is None
    members = {m["identities"][0]["value"]: m for m in first["members"] + rest["members"]}
    assert set(members) == {"ada-acme", "bea-acme"}
    assert members["bea-acme"]["stage"] == "consideration"
    assert members["ada-acme"]["entered_at"] == "2026-02-04T10:00:00.000Z"
    assert first["members"][0]["customer_id"] < rest["members"][0]["customer_id"]


def test_accounts_in_a_stage(stack: dict[str, Any], accounts: None) -> None:
    purchase = valid(schemas_accounts.StageAccountsPage, get(stack, "/v1/stages/purchase/accounts"))
    assert [a["group_id"] for a in purchase["accounts"]] == ["acme", "globex"]
    assert purchase["accounts"][0]["members"] == 2
    one = get(stack, "/v1/stages/purchase/accounts", limit=1).json()
    more = get(stack, "/v1/stages/purchase/accounts", limit=1, cursor=one["next_cursor"]).json()
    assert [a["group_id"] for a in one["accounts"] + more["accounts"]] == ["acme", "globex"]
    assert get(stack, "/v1/stages/consideration/accounts").json()["accounts"] == []
    assert get(stack, "/v1/stages/nope/accounts").status_code == 404
    sizes = valid(schemas_stages.StageList, get(stack, "/v1/stages"))
    assert sizes["stages"]  # the customer endpoints are unchanged


def test_funnel_by_an_account_trait(stack: dict[str, Any], accounts: None) -> None:
    answer = valid(
        schemas_analytics.FunnelAnswer, get(stack, "/v1/funnel", group_by="account.plan", **WINDOW)
    )
    groups = {g["group"]: g for g in answer["groups"]}
    assert groups["enterprise"]["customers"] == 2  # acme's plan, whoever set it
    assert [s["reached"] for s in groups["enterprise"]["stages"]][:4] == [2, 2, 1, 1]
    assert groups["(none)"]["customers"] >= 2  # globex has no plan
    assert "pro" not in groups  # ada's group call set it, bea's later one replaced it
    assert answer["customers"] == sum(g["customers"] for g in answer["groups"])


def test_unknown_account_is_a_404_problem(stack: dict[str, Any]) -> None:
    for path in ("/v1/accounts/nobody", "/v1/accounts/nobody/members"):
        response = get(stack, path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


def test_erasing_a_member_leaves_the_account(stack: dict[str, Any], accounts: None) -> None:
    post(
        stack,
        [
            page("group", "zed1", 5, userId="zed", groupId="initech", traits={"n": 1}),
            page("group", "zoe1", 5, userId="zoe", groupId="initech", traits={"n": 2}),
        ],
    )
    wait_for(lambda: (_account(stack, "initech") or {}).get("members") == 2)
    erased = httpx.delete(f"{stack['api']}/v1/customers/zoe", headers=ADMIN)
    assert erased.status_code == 200, erased.text
    initech = wait_for(lambda: (a := _account(stack, "initech")) and a["members"] == 1 and a)
    assert initech["traits"] == {"n": 1}
