"""Segment endpoints: stages and their customers, funnel, business metrics."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api import analytics
from api.deps import Reads, ReadScope, Stages
from api.timeparse import decode_cursor, duration_ms, encode_cursor, iso, to_ms
from infra.problems import Problem

router = APIRouter(prefix="/v1", tags=["segments"])


@router.get("/stages", summary="Each stage with its current customer count")
async def list_stages(reads: Reads, stages: Stages, _: ReadScope) -> dict[str, Any]:
    counts = await reads.stage_counts(stages.stages)
    return {
        "stages": [{"stage": s, "customers": n} for s, n in zip(stages.stages, counts, strict=True)]
    }


@router.get(
    "/stages/{stage}/customers",
    summary="Customers currently in a stage",
    description="Filter by entry time and by traits with `trait.<name>=<value>` query "
    "parameters, e.g. `trait.plan=pro`: the segment a campaign targets.",
)
async def stage_customers(
    stage: str,
    request: Request,
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    entered_after: str | None = None,
    entered_before: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest-entered last; follow ``next_cursor`` for the next page."""
    if stage not in stages.stages:
        raise Problem(404, "Unknown stage", f"stages are {list(stages.stages)}")
    traits = {
        k.removeprefix("trait."): v
        for k, v in request.query_params.items()
        if k.startswith("trait.")
    }
    low_ms, low_id = decode_cursor(cursor, [to_ms(entered_after, 0, "entered_after"), ""])
    high_ms = to_ms(entered_before, float("inf"), "entered_before")
    page: list[dict[str, Any]] = []
    position = (float(low_ms), str(low_id))
    for _round in range(20):  # bounded scan when trait filters drop most customers
        ids = await reads.in_stage(stage, position, high_ms, limit)
        if not ids:
            break
        position = (ids[-1][1], ids[-1][0])
        profiles = await reads.profiles([cid for cid, _ in ids])
        page.extend(_summary(p) for p in profiles if p and _has_traits(p, traits))
        if len(page) >= limit:
            break
    page = page[:limit]
    more = len(page) == limit
    return {
        "stage": stage,
        "customers": page,
        "next_cursor": encode_cursor(page[-1]["entered_ms"], page[-1]["customer_id"])
        if more
        else None,
    }


def _has_traits(profile: dict[str, Any], wanted: dict[str, str]) -> bool:
    traits = profile.get("traits", {})
    return all(str(traits.get(k)).lower() == v.lower() for k, v in wanted.items())


def _summary(profile: dict[str, Any]) -> dict[str, Any]:
    at_ms = profile["history"][profile["stage"]][0]
    return {
        "customer_id": profile["id"],
        "identities": profile["identities"],
        "entered_at": iso(at_ms),
        "entered_ms": at_ms,
        "traits": profile.get("traits", {}),
    }


@router.get("/funnel", summary="Funnel: reached, conversion, time between stages, stalled")
async def funnel(
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    since: str | None = None,
    until: str | None = None,
    group_by: Annotated[str | None, Query(pattern=r"^(channel|campaign|trait\.[\w.-]+)$")] = None,
    channel: str | None = None,
    campaign: str | None = None,
    stalled_after: Annotated[str, Query(examples=["7d"])] = "7d",
) -> dict[str, Any]:
    """Over customers who entered stages in [since, until]; split by ``group_by``."""
    now = time.time() * 1000
    rows = analytics.select(await reads.funnel_rows(), channel, campaign)
    window: dict[str, Any] = {
        "stages": stages.stages,
        "since_ms": to_ms(since, 0, "since"),
        "until_ms": to_ms(until, now, "until"),
        "now_ms": now,
        "stalled_after_ms": duration_ms(stalled_after, "stalled_after"),
    }
    return {
        "since": iso(window["since_ms"]),
        "until": iso(window["until_ms"]),
        "group_by": group_by,
        "groups": analytics.grouped_funnel(rows, group_by, **window),
    }


@router.get("/metrics", summary="Conversion rate, retention rate, customer lifetime value")
async def business_metrics(
    reads: Reads, stages: Stages, _: ReadScope, since: str | None = None, until: str | None = None
) -> dict[str, Any]:
    """For the window (default: the last 30 days)."""
    now = time.time() * 1000
    until_ms = to_ms(until, now, "until")
    since_ms = to_ms(since, until_ms - 30 * analytics.DAY_MS, "since")
    purchase = "purchase" if "purchase" in stages.stages else stages.stages[-1]
    figures = analytics.business_metrics(await reads.funnel_rows(), since_ms, until_ms, purchase)
    return {"since": iso(since_ms), "until": iso(until_ms), **figures}
