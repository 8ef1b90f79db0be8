"""The journey map: a web page served by the API, and the stage/channel flows it draws.

The page (``GET /map``) is static HTML, CSS and JavaScript without a build step; it asks for
an API token once and calls the read endpoints with it (funnel, flows, customers).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api import schemas_analytics as schemas
from api.deps import Reads, ReadScope, Selected, Stages, Window
from api.flows import flows
from api.selection import TRAIT_PARAMETER
from api.timeparse import iso
from infra.problems import JSONBody, Problem

router = APIRouter(tags=["journey map"])
ASSETS = {"map.js": "application/javascript", "map.css": "text/css"}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {
    **_HEADERS,
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("api").joinpath(f"static/{name}").read_bytes()


@router.get("/map", include_in_schema=False)
async def journey_map() -> Response:
    """The journey map page (its data calls need a read token)."""
    return Response(
        _asset("map.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


@router.get("/map/{name}", include_in_schema=False)
async def journey_map_asset(name: Annotated[str, Path(max_length=20)]) -> Response:
    if name not in ASSETS:
        raise Problem(404, "Not Found", f"no asset {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers=_HEADERS)


@router.get(
    "/v1/flows",
    summary="How customers move between first-touch channels and stages (Sankey links)",
    response_model=schemas.FlowAnswer,
    openapi_extra={"parameters": [TRAIT_PARAMETER]},
)
async def stage_flows(
    request: Request, reads: Reads, stages: Stages, _: ReadScope, span: Window, selection: Selected
) -> Response:
    """Each customer's stages in the order it entered them: a link from its first-touch
    channel to its first stage, then from each stage to the next, split by the channel of
    the event that entered the later stage. A link counts when the customer **entered** its
    target stage in the window [since, until]: so a stage's inflow is the customers who
    entered that very stage. (The funnel's *reached* also counts customers who skipped the
    stage and entered a later one, so it can be larger.)"""
    low, high = span
    rows = [row async for chunk in reads.stored_rows() for row in chunk]
    answer = flows(rows, stages.stages, selection, low, high)
    return JSONBody(
        {
            "since": iso(low),
            "until": iso(high),
            **answer,
            "filters": selection.echo(),
            "traits": selection.traits,
        }
    )
