"""Answer shapes of the stage endpoints, ``/v1/stages`` (see :mod:`api.schemas`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.schemas import AT, IdentityDoc, documented


class StageCount(BaseModel):
    stage: str
    customers: int


class StageList(BaseModel):
    """The stages in model order, with how many customers are in each now."""

    model_config = documented(
        {
            "stages": [
                {"stage": "awareness", "customers": 5210},
                {"stage": "consideration", "customers": 1893},
                {"stage": "decision", "customers": 402},
                {"stage": "purchase", "customers": 311},
                {"stage": "post-purchase", "customers": 97},
            ]
        }
    )
    stages: list[StageCount]


class StageMember(BaseModel):
    customer_id: str
    identities: list[IdentityDoc]
    entered_at: str
    traits: dict[str, Any]


class StagePage(BaseModel):
    """Customers now in a stage, oldest entry first; continue while ``next_cursor`` is set."""

    model_config = documented(
        {
            "stage": "decision",
            "customers": [
                {
                    "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
                    "identities": [{"type": "user_id", "value": "ada"}],
                    "entered_at": AT,
                    "traits": {"plan": "pro"},
                }
            ],
            "next_cursor": None,
        }
    )
    stage: str
    customers: list[StageMember]
    next_cursor: str | None
