"""Answer shapes of the journey map's moments: drop-off, personas, trigger firings per day."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import documented


class DropStage(BaseModel):
    """One stage's drop-off (the funnel's definitions)."""

    stage: str
    next_stage: str | None
    reached: int = Field(description="Customers who reached it (or a later one) in the window.")
    continued: int | None = Field(description="Of them, those at the next stage by `until`.")
    dropped: int | None = Field(description="`reached - continued` (none for the last stage).")
    drop_rate: float | None = Field(description="`dropped / reached`, in [0, 1].")


class DropGroup(BaseModel):
    group: str = Field(description="A first-touch channel or campaign (`(none)` when unknown).")
    customers: int
    stages: list[DropStage]


_DROP = [
    {
        "stage": "decision",
        "next_stage": "purchase",
        "reached": 200,
        "continued": 120,
        "dropped": 80,
        "drop_rate": 0.4,
    },
    {
        "stage": "post-purchase",
        "next_stage": None,
        "reached": 40,
        "continued": None,
        "dropped": None,
        "drop_rate": None,
    },
]


class DropOffAnswer(BaseModel):
    """Where customers drop off: per stage, overall and per first-touch channel and campaign."""

    model_config = documented(
        {
            "since": "2026-01-01T00:00:00.000Z",
            "until": "2026-04-01T00:00:00.000Z",
            "filters": {"channel": None, "campaign": None},
            "traits": {"plan": ["pro"]},
            "customers": 1000,
            "stages": _DROP,
            "by_channel": [{"group": "ads", "customers": 600, "stages": _DROP}],
            "by_campaign": [{"group": "spring-sale", "customers": 300, "stages": _DROP}],
        }
    )
    since: str
    until: str
    filters: dict[str, str | None]
    traits: dict[str, list[str]]
    customers: int
    stages: list[DropStage]
    by_channel: list[DropGroup] = Field(description="Channels with a customer in the window.")
    by_campaign: list[DropGroup] = Field(description="Campaigns with a customer in the window.")


class PersonaValue(BaseModel):
    value: str = Field(description="The trait's value (non-strings in JSON: `true`, `42`).")
    customers: int = Field(description="Customers counted in the funnel's window with it.")


class PersonaTrait(BaseModel):
    trait: str
    values: list[PersonaValue]


class PersonasAnswer(BaseModel):
    """The persona traits (`TOUCHPATH_PERSONA_TRAITS`) and the values customers have."""

    model_config = documented(
        {
            "since": "2026-01-01T00:00:00.000Z",
            "until": "2026-04-01T00:00:00.000Z",
            "personas": [
                {
                    "trait": "plan",
                    "values": [
                        {"value": "pro", "customers": 120},
                        {"value": "free", "customers": 880},
                    ],
                },
                {"trait": "country", "values": [{"value": "DE", "customers": 300}]},
            ],
        }
    )
    since: str
    until: str
    personas: list[PersonaTrait]


class FiringDay(BaseModel):
    day: str = Field(description="UTC day of the firings' due time (event time), YYYY-MM-DD.")
    trigger: str
    fired: int = Field(description="Firings due that day.")
    cancelled: int = Field(description="Of firings due that day, cancellations published.")
    net: int = Field(description="`fired - cancelled`.")


class FiringTotal(BaseModel):
    trigger: str
    fired: int
    cancelled: int
    net: int


class FiringsAnswer(BaseModel):
    """Trigger firings over time: per day (of the due time) and trigger."""

    model_config = documented(
        {
            "since": "2026-03-01T00:00:00.000Z",
            "until": "2026-03-31T23:59:59.999Z",
            "kept_days": 400,
            "triggers": ["cart-abandonment", "lapsing"],
            "days": [
                {
                    "day": "2026-03-02",
                    "trigger": "cart-abandonment",
                    "fired": 14,
                    "cancelled": 2,
                    "net": 12,
                }
            ],
            "totals": [
                {"trigger": "cart-abandonment", "fired": 14, "cancelled": 2, "net": 12},
                {"trigger": "lapsing", "fired": 0, "cancelled": 0, "net": 0},
            ],
        }
    )
    since: str
    until: str
    kept_days: int = Field(description="Counts are kept this many days after their day.")
    triggers: list[str]
    days: list[FiringDay] = Field(description="Days and triggers with a firing, oldest first.")
    totals: list[FiringTotal]
