"""The journey map's moments: where customers drop off, the personas to filter by, and
trigger firings over time (computed from ``P:funnel`` and the ``P:trg:n:<day>`` counts)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import schemas_moments as schemas
from api.deps import Config, Reads, ReadScope, Selected, SinceStart, Stages, UntilNow, Window
from api.moments import DropOff, Personas, days_between, firing_counts
from api.routes_webhooks import trigger_names
from api.selection import TRAIT_PARAMETER
from api.timeparse import DAY_MS, iso, window
from infra.problems import JSONBody
from touchpath.triggers import COUNT_DAYS

router = APIRouter(prefix="/v1", tags=["journey map"])


@router.get(
    "/drop-off",
    summary="Where customers drop off: per stage, first-touch channel and campaign",
    response_model=schemas.DropOffAnswer,
    openapi_extra={"parameters": [TRAIT_PARAMETER]},
)
async def drop_off(
    reads: Reads, stages: Stages, _: ReadScope, span: Window, selection: Selected
) -> Response:
    """The funnel's counts read the other way round. For each stage: **reached** — customers
    who reached it or a later one in the window [since, until] (as `GET /v1/funnel`);
    **continued** — of them, those who reached the next stage by ``until``; **dropped** —
    ``reached - continued``, the customers whose journey stopped at this stage (so far);
    **drop_rate** — ``dropped / reached``. The last stage has no next stage and no drop-off.
    Overall and split by first-touch channel (``by_channel``) and first-touch campaign
    (``by_campaign``); channels and campaigns without a customer in the window are left out."""
    low, high = span
    counter = DropOff(stages.stages, low, high)
    async for rows in reads.funnel_rows():
        counter.add(selection.rows(rows))
    return JSONBody(
        {
            "since": iso(low),
            "until": iso(high),
            "filters": selection.echo(),
            "traits": selection.traits,
            **counter.answer(),
        }
    )


@router.get(
    "/personas",
    summary="The persona traits and the values customers have (for persona filters)",
    response_model=schemas.PersonasAnswer,
)
async def personas(
    reads: Reads, stages: Stages, settings: Config, _: ReadScope, span: Window
) -> Response:
    """For each trait of ``TOUCHPATH_PERSONA_TRAITS`` (in that order): the values held by
    customers counted in the funnel's window (a stage reached in [since, until]), with how
    many customers hold each, most frequent first (50 at most). A value with no customer is
    not listed. Filter any analytics endpoint by one with ``trait.<name>=<value>``."""
    low, high = span
    counter = Personas(stages.stages, low, high, settings.persona_traits)
    async for rows in reads.funnel_rows():
        counter.add(rows)
    return JSONBody({"since": iso(low), "until": iso(high), "personas": counter.answer()})


@router.get(
    "/triggers/firings",
    summary="Trigger firings over time: per day and trigger",
    response_model=schemas.FiringsAnswer,
)
async def trigger_firings(
    request: Request,
    reads: Reads,
    _: ReadScope,
    since: SinceStart = None,
    until: UntilNow = None,
    trigger: Annotated[
        list[str] | None, Query(description="Only these triggers (repeat the parameter).")
    ] = None,
) -> Response:
    """For each UTC day whose date falls in [since, until] (whole days: the days of `since`
    and `until` count in full) and each trigger: **fired** — firings published whose due
    time (event time: the arming plus the trigger's `after`) is on that day, each counted
    once however often it was delivered; **cancelled** — of those, cancellations published
    (a late event voided the firing); **net** — ``fired - cancelled``. Counts are kept
    ``kept_days`` (400) days after their day; earlier days answer nothing. Erasing a customer
    leaves these aggregate counts as they are."""
    now = int(time.time() * 1000)
    low, high = window(since, until, now)
    first = max(low, now - (COUNT_DAYS + 1) * DAY_MS)
    days = days_between(_day(first), _day(min(high, now)))
    stored = await reads.trigger_counts([d.isoformat() for d in days])
    answer = firing_counts(days, stored, trigger_names(request))
    if trigger:
        answer = _only(answer, set(trigger))
    return JSONBody({"since": iso(low), "until": iso(high), "kept_days": COUNT_DAYS, **answer})


def _day(ms: int) -> Any:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _only(answer: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    return {
        "triggers": [t for t in answer["triggers"] if t in wanted],
        "days": [d for d in answer["days"] if d["trigger"] in wanted],
        "totals": [t for t in answer["totals"] if t["trigger"] in wanted],
    }
