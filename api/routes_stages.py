"""Stage endpoints: the stages with their sizes, and the customers now in a stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import schemas_stages as schemas
from api import views
from api.deps import Reads, ReadScope, Stages
from api.docs import problem
from api.pagination import Position, decode_cursor, encode_cursor, filtered_page
from api.selection import trait_filters
from api.timeparse import FOREVER_MS, to_ms
from infra.problems import JSONBody, Problem

router = APIRouter(prefix="/v1/stages", tags=["stages"])
MAX_BATCHES = 10  # per page: a selective trait filter returns a short page and a cursor


@router.get("", summary="The stages with their current sizes", response_model=schemas.StageList)
async def list_stages(reads: Reads, stages: Stages, _: ReadScope) -> Response:
    """Each stage of the model, in order, with the number of customers in it now."""
    counts = await reads.stage_counts(stages.stages)
    return JSONBody(
        {
            "stages": [
                {"stage": stage, "customers": count}
                for stage, count in zip(stages.stages, counts, strict=True)
            ]
        }
    )


@router.get(
    "/{stage}/customers",
    summary="The customers now in a stage (a segment to target)",
    response_model=schemas.StagePage,
    responses=problem(404, "The stage is not in the model."),
    openapi_extra={
        "parameters": [
            {
                "name": "trait.<name>",
                "in": "query",
                "required": False,
                "description": "Only customers whose latest trait `<name>` equals the value, "
                "e.g. `trait.plan=pro` (repeat a name to accept several values; strings "
                "compare exactly, other values in JSON: `true`, `42`).",
                "schema": {"type": "string"},
                "example": "pro",
            }
        ]
    },
)
async def stage_customers(
    stage: str,
    request: Request,
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    entered_after: Annotated[
        str | None, Query(description="Entered at or after (ISO-8601 or epoch ms).")
    ] = None,
    entered_before: Annotated[
        str | None, Query(description="Entered before (ISO-8601 or epoch ms).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> Response:
    """Customers whose current stage is ``stage``, oldest entry first. With trait filters a
    page may hold fewer than ``limit`` customers: continue while ``next_cursor`` is set."""
    if stage not in stages.stages:
        raise Problem(404, "Not Found", f"unknown stage {stage!r}; stages: {list(stages.stages)}")
    wanted = trait_filters(request.query_params)
    after = decode_cursor(cursor, (int, str))
    low = to_ms(entered_after, 0, "entered_after")
    high = to_ms(entered_before, FOREVER_MS, "entered_before")

    async def fetch(position: Position | None, count: int) -> Sequence[tuple[Position, Any]]:
        found = await reads.in_stage(stage, position, low, high, count)
        profiles = await reads.profiles([customer for _, customer in found])
        return [(at, (profile, at[0])) for (at, _), profile in zip(found, profiles, strict=True)]

    def keep(item: tuple[dict[str, Any] | None, int]) -> bool:
        profile = item[0]
        return (
            profile is not None
            and profile.get("stage") == stage
            and views.has_traits(profile, wanted)
        )

    batch = min(1000, limit * 2) if wanted else limit
    page, following = await filtered_page(fetch, keep, after, limit, batch, MAX_BATCHES)
    return JSONBody(
        {
            "stage": stage,
            "customers": [views.segment_member(profile, at) for profile, at in page],
            "next_cursor": encode_cursor(following) if following else None,
        }
    )
