"""Answer shapes of the account endpoints (see :mod:`api.schemas`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.schemas import AT, IdentityDoc, documented

_HISTORY = [
    {
        "stage": "awareness",
        "entered_at": "2026-02-27T18:12:03.000Z",
        "message_id": "m-1",
        "channel": "ads",
        "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
    },
    {
        "stage": "purchase",
        "entered_at": AT,
        "message_id": "m-9",
        "channel": "web",
        "customer_id": "cus_0b2a44e1d9c3f7a61e05",
    },
]


class AccountStageEntry(BaseModel):
    """The earliest entry of a stage among the account's members, and whose it was."""

    stage: str
    entered_at: str
    message_id: str
    channel: str
    customer_id: str


class AccountAnswer(BaseModel):
    """An account (a ``group`` call's groupId): its traits (per trait, the latest any member's
    ``group`` call set), its stage (the furthest of its members'), when the first member
    entered each stage, and how many members it has."""

    model_config = documented(
        {
            "group_id": "acme",
            "traits": {"name": "Acme Inc.", "plan": "enterprise", "employees": 250},
            "stage": "purchase",
            "entered_at": AT,
            "stage_history": _HISTORY,
            "members": 2,
        }
    )
    group_id: str
    traits: dict[str, Any]
    stage: str | None
    entered_at: str | None
    stage_history: list[AccountStageEntry]
    members: int


class AccountMember(BaseModel):
    customer_id: str
    identities: list[IdentityDoc]
    stage: str | None
    entered_at: str | None
    traits: dict[str, Any]


class AccountMembersPage(BaseModel):
    """The customers of an account, by customer id; continue while ``next_cursor`` is set."""

    model_config = documented(
        {
            "group_id": "acme",
            "members": [
                {
                    "customer_id": "cus_0b2a44e1d9c3f7a61e05",
                    "identities": [{"type": "user_id", "value": "ada"}],
                    "stage": "purchase",
                    "entered_at": AT,
                    "traits": {"name": "Ada Lovelace"},
                }
            ],
            "next_cursor": "WyJjdXNfMGIyYTQ0ZTFkOWMzZjdhNjFlMDUiXQ",
        }
    )
    group_id: str
    members: list[AccountMember]
    next_cursor: str | None


class StageAccount(BaseModel):
    group_id: str
    entered_at: str
    members: int
    traits: dict[str, Any]


class StageAccountsPage(BaseModel):
    """Accounts whose current stage (the furthest of their members') is the stage, by
    groupId; a page may hold fewer than ``limit``: continue while ``next_cursor`` is set."""

    model_config = documented(
        {
            "stage": "purchase",
            "accounts": [
                {
                    "group_id": "acme",
                    "entered_at": AT,
                    "members": 2,
                    "traits": {"name": "Acme Inc.", "plan": "enterprise"},
                }
            ],
            "next_cursor": None,
        }
    )
    stage: str
    accounts: list[StageAccount]
    next_cursor: str | None
