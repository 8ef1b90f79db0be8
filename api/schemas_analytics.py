"""Answer shapes of the analytics endpoints: funnel, figures (``/v1/metrics``), satisfaction
and flows (see :mod:`api.schemas`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import documented


class FunnelStage(BaseModel):
    stage: str
    reached: int
    stalled: int
    next_stage: str | None
    converted_to_next: int | None
    conversion_to_next: float | None
    median_seconds_to_next: float | None
    p90_seconds_to_next: float | None


class FunnelGroup(BaseModel):
    group: str
    customers: int
    stages: list[FunnelStage]


_FUNNEL_STAGES = [
    {
        "stage": "awareness",
        "reached": 1000,
        "stalled": 120,
        "next_stage": "consideration",
        "converted_to_next": 640,
        "conversion_to_next": 0.64,
        "median_seconds_to_next": 86400.0,
        "p90_seconds_to_next": 604800.0,
    },
    {
        "stage": "post-purchase",
        "reached": 40,
        "stalled": 0,
        "next_stage": None,
        "converted_to_next": None,
        "conversion_to_next": None,
        "median_seconds_to_next": None,
        "p90_seconds_to_next": None,
    },
]


class FunnelAnswer(BaseModel):
    """Customers reaching each stage in the window, conversion, time between stages, stalled."""

    model_config = documented(
        {
            "since": "2026-01-01T00:00:00.000Z",
            "until": "2026-04-01T00:00:00.000Z",
            "stalled_after": "7d",
            "journey": "all",
            "group_by": "channel",
            "filters": {"channel": None, "campaign": None},
            "traits": {"plan": ["pro"]},
            "customers": 1000,
            "stages": _FUNNEL_STAGES,
            "groups": [{"group": "ads", "customers": 1000, "stages": _FUNNEL_STAGES}],
        }
    )
    since: str
    until: str
    stalled_after: str
    journey: str = Field(
        "all", description="`all`, `first` or `repeat`: which journeys were counted"
    )
    group_by: str | None
    filters: dict[str, str | None]
    traits: dict[str, list[str]] = Field(
        description="The persona filters given (`trait.<name>=<value>`), by trait name."
    )
    customers: int = Field(
        description="customers counted at one stage at least (journeys with `repeat`)"
    )
    stages: list[FunnelStage]
    groups: list[FunnelGroup] | None


class Period(BaseModel):
    since: str
    until: str


class Retention(BaseModel):
    active_previous_period: int
    retained: int
    rate: float | None


class ChannelValue(BaseModel):
    customers: int
    purchasers: int
    revenue: float
    per_purchasing_customer: float | None


class LifetimeValue(BaseModel):
    revenue: float
    per_purchasing_customer: float | None
    per_customer: float | None
    by_first_touch_channel: dict[str, ChannelValue]


class FiguresAnswer(BaseModel):
    """Conversion rate, retention rate and customer lifetime value for a period."""

    model_config = documented(
        {
            "since": "2026-03-01T00:00:00.000Z",
            "until": "2026-03-31T00:00:00.000Z",
            "previous_period": {
                "since": "2026-01-30T00:00:00.000Z",
                "until": "2026-03-01T00:00:00.000Z",
            },
            "customers_seen": 800,
            "purchasers": 48,
            "conversion_rate": 0.06,
            "retention": {"active_previous_period": 500, "retained": 140, "rate": 0.28},
            "lifetime_value": {
                "revenue": 5784.0,
                "per_purchasing_customer": 120.5,
                "per_customer": 7.23,
                "by_first_touch_channel": {
                    "ads": {
                        "customers": 300,
                        "purchasers": 30,
                        "revenue": 3900.0,
                        "per_purchasing_customer": 130.0,
                    }
                },
            },
        }
    )
    since: str
    until: str
    previous_period: Period
    customers_seen: int
    purchasers: int
    conversion_rate: float | None
    retention: Retention
    lifetime_value: LifetimeValue


_SATISFACTION = {
    "nps": 25.0,
    "nps_answers": 4,
    "promoters": 2,
    "passives": 1,
    "detractors": 1,
    "csat": 4.5,
    "csat_answers": 2,
}


class SatisfactionFigures(BaseModel):
    """NPS and CSAT of a group of survey answers."""

    nps: float | None = Field(description="% promoters - % detractors, in [-100, 100].")
    nps_answers: int
    promoters: int
    passives: int
    detractors: int
    csat: float | None = Field(description="Average CSAT score, in [1, 5].")
    csat_answers: int


class StageSatisfaction(SatisfactionFigures):
    """The figures of the answers given while customers were at one stage."""

    stage: str


class SatisfactionAnswer(SatisfactionFigures):
    """NPS and CSAT overall and per stage."""

    model_config = documented(
        {
            "since": "1970-01-01T00:00:00.000Z",
            "until": "2026-03-31T00:00:00.000Z",
            **_SATISFACTION,
            "stages": [{"stage": "post-purchase", **_SATISFACTION}],
        }
    )

    since: str
    until: str
    stages: list[StageSatisfaction]


class FlowLink(BaseModel):
    """Customers who went from ``source`` to ``target``, entering it through ``channel``
    (the target entered in the window)."""

    source: str
    target: str
    channel: str
    customers: int


class FlowAnswer(BaseModel):
    """The links of a Sankey diagram of how customers move between channels and stages."""

    model_config = documented(
        {
            "since": "2026-01-01T00:00:00.000Z",
            "until": "2026-04-01T00:00:00.000Z",
            "customers": 120,
            "filters": {"channel": None, "campaign": None},
            "traits": {},
            "links": [
                {
                    "source": "first touch: ads",
                    "target": "awareness",
                    "channel": "ads",
                    "customers": 80,
                },
                {
                    "source": "awareness",
                    "target": "consideration",
                    "channel": "email",
                    "customers": 45,
                },
            ],
        }
    )
    since: str
    until: str
    customers: int = Field(description="Selected customers with a link counted in the window.")
    filters: dict[str, str | None]
    traits: dict[str, list[str]] = Field(
        description="The persona filters given (`trait.<name>=<value>`), by trait name."
    )
    links: list[FlowLink]
