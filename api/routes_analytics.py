"""Analytics endpoints: the funnel and the business figures, computed from ``P:funnel``."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api import schemas_analytics as schemas
from api.accounts import trait_groups
from api.business import Figures
from api.deps import TIME, Reads, ReadScope, Selected, SinceStart, Stages, UntilNow, Window
from api.funnel import ACCOUNT, NONE, Funnel, text
from api.selection import TRAIT_PARAMETER
from api.timeparse import DAY_MS, duration_ms, iso, window
from infra.problems import JSONBody
from touchpath.surveys import Satisfaction

router = APIRouter(prefix="/v1", tags=["analytics"])


@router.get(
    "/funnel",
    summary="Funnel: customers reaching each stage, conversion, time between stages, stalled",
    response_model=schemas.FunnelAnswer,
    openapi_extra={"parameters": [TRAIT_PARAMETER]},
)
async def funnel(
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    selection: Selected,
    since: SinceStart = None,
    until: UntilNow = None,
    group_by: Annotated[
        str | None,
        Query(
            pattern=r"^(channel|campaign|(trait|account)\.[^\s]{1,128})$",
            description="Split by first-touch `channel`, first-touch `campaign`, a trait "
            "(`trait.plan`), or a trait of the customer's account (`account.plan`: the "
            "account's trait as `GET /v1/accounts/{groupId}` answers it; a customer of "
            "several accounts counts in the one it was last grouped with, one of none in "
            "`(none)`); the 100 largest groups are listed, the rest as `(other)`.",
        ),
    ] = None,
    stalled_after: Annotated[
        str, Query(description="`30m`, `12h`, `7d`, `2w`.", examples=["7d"])
    ] = "7d",
    journey: Annotated[
        Literal["all", "first", "repeat"],
        Query(
            description="`all`: every customer by its stage history; `first`: each customer's "
            "first journey (its stage entries before its second cycle began); `repeat`: each "
            "repeat journey, i.e. every cycle after the first (a repeat purchase, or a return "
            "after a lapse), by the stages entered in that cycle: `customers` then counts "
            "journeys, and a customer with two repeat purchases counts twice. See the README's "
            "lifecycle model.",
        ),
    ] = "all",
) -> Response:
    """For each stage in model order: the customers who **reached** it in the window (by the
    time they first were at that stage *or a later one*, so a purchase without a recorded
    decision still passed the decision stage: the counts never grow along the funnel over
    all time); the share of them that reached the next stage by ``until``
    (**conversion_to_next**, in [0, 1]) and the median and 90th percentile of the time it took;
    and how many are **stalled**: still at that stage, entered longer than ``stalled_after``
    ago (the last stage never stalls; nor does a journey followed by a later one). Times to
    the next stage are read from a histogram: within 0.25 % of the exact value. With
    ``group_by``, groups without a customer counted in the window are left out. With
    ``journey`` the same counts are made of first journeys or of repeat journeys apart."""
    now = int(time.time() * 1000)
    low, high = window(since, until, now)
    stall = duration_ms(stalled_after, "stalled_after")
    counter = Funnel(stages.stages, low, high, now - stall, group_by, journey)
    if group_by is not None and group_by.startswith(ACCOUNT):
        trait = group_by.removeprefix(ACCOUNT)
        groups = trait_groups(trait, await reads.all_accounts(), text)
        async for group, rows in reads.funnel_rows_grouped(groups, NONE):
            counter.add_group(group, selection.rows(rows))
    else:
        async for rows in reads.funnel_rows():
            counter.add(selection.rows(rows))
    return JSONBody(
        {
            "since": iso(low),
            "until": iso(high),
            "stalled_after": stalled_after,
            "journey": journey,
            "group_by": group_by,
            "filters": selection.echo(),
            "traits": selection.traits,
            **counter.answer(),
        }
    )


@router.get(
    "/metrics",
    summary="Conversion rate, retention rate and customer lifetime value",
    response_model=schemas.FiguresAnswer,
    operation_id="business_metrics_v1_metrics_get",  # as before the rename: clients keep it
)
async def business_figures(
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    since: Annotated[
        str | None, Query(description=TIME + " Default: 30 days before until.")
    ] = None,
    until: UntilNow = None,
) -> Response:
    """* **conversion_rate** — customers first seen in the period who reached the `purchase`
      stage (the last stage if the model has none) by ``until``, over those first seen.
    * **retention.rate** — customers active in the previous period of equal length who were
      also active in this one, over those active in the previous one. A customer counts as
      active from its first touch to its latest activity: any event the rules do not ignore
      (a repeat order, a page view, an email click; not a machine email open). Activity is
      stored per UTC day (the time of the day's first event), so the rate is exact for
      periods that start at midnight UTC.
    * **lifetime_value** — revenue of every event the rules count as a purchase (an event
      matching a rule of the rules file's purchase stage: by default `Order Completed`,
      `Subscription Started`, `Trial Converted`), read from the first numeric property of
      `revenue.properties` in the rules file (default `revenue`, `total`, `value`; none: 0),
      of the customers first seen in the period, whenever it was spent: in total, per
      purchasing customer (those who reached the purchase stage by ``until``), per customer,
      and by first-touch channel."""
    low, high = window(since, until, int(time.time() * 1000), lookback_ms=30 * DAY_MS)
    counter = Figures(low, high, stages.index(stages.purchase_stage or stages.stages[-1]))
    async for rows in reads.funnel_rows():
        counter.add(rows)
    previous = low - (high - low)
    return JSONBody(
        {
            "since": iso(low),
            "until": iso(high),
            "previous_period": {"since": iso(previous), "until": iso(low)},
            **counter.answer(),
        }
    )


@router.get(
    "/satisfaction",
    summary="NPS and CSAT, overall and per stage",
    response_model=schemas.SatisfactionAnswer,
)
async def satisfaction(reads: Reads, stages: Stages, _: ReadScope, span: Window) -> Response:
    """Survey answers from any channel (`NPS Survey Answered` with `properties.score` 0-10,
    `CSAT Survey Answered` with 1-5, chat tools' satisfaction ratings) given in the window.
    **nps** = % promoters (9-10) - % detractors (0-6); **csat** = average score. Each answer
    counts in the stage the customer was at when answering (`(none)` before any stage)."""
    low, high = span
    totals = Satisfaction()
    async for customers in reads.survey_answers():
        for answers in customers:
            totals.add_all(a for a in answers if low <= a[2] <= high)
    return JSONBody({"since": iso(low), "until": iso(high), **totals.report(stages.stages)})
