"""``Annotated`` dependencies of the routes; everything they hand out is built once, in the
lifespan (Redis client, read model, eraser) or at start-up (settings, stage model).

Dependencies are ``async`` on purpose: FastAPI runs plain functions in a thread pool.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from api.auth import require
from api.erasure import Eraser
from api.readmodel import ReadModel
from api.selection import Selection, trait_filters
from api.timeparse import window
from infra.problems import Problem
from touchpath.identifiers import Identifier, identifier_from_query
from touchpath.settings import ApiToken
from touchpath.settings_views import ApiSettings
from touchpath.stages import StageModel

TYPE_DESCRIPTION = (
    "The identifier's type: `user_id` (default), `anonymous_id`, `email`, `phone` "
    "(both normalised as at ingestion), an external id type such as `intercom_user`, or "
    "`customer_id` (a former id answers with the customer it became)."
)


def parse_identifier(
    value: str, id_type: str, hash_key: bytes | None = None, region: str = ""
) -> Identifier:
    """The identifier a caller names (emails and phones normalised as at ingestion, with the
    phone region, and hashed when ``TOUCHPATH_IDENTIFIER_HASH_KEY`` is set); 400 if it cannot
    be one."""
    found = identifier_from_query(value, id_type, hash_key, region)
    if found is None:
        raise Problem(400, "Bad Request", f"{value!r} is not a usable {id_type} identifier")
    return found


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def _read_model(request: Request) -> ReadModel:
    reads: ReadModel = request.app.state.read_model
    return reads


async def _eraser(request: Request) -> Eraser:
    eraser: Eraser = request.app.state.eraser
    return eraser


async def _stage_model(request: Request) -> StageModel:
    model: StageModel = request.app.state.stage_model
    return model


async def _customer_ref(
    request: Request,
    identifier: Annotated[
        str, Path(description="The identifier's value.", examples=["ada@example.com"])
    ],
    type: Annotated[str, Query(description=TYPE_DESCRIPTION, examples=["email"])] = "user_id",
) -> Identifier:
    region = request.app.state.settings.phone_region
    return parse_identifier(identifier, type, request.app.state.hash_key, region)


TIME = "ISO-8601 time (e.g. `2026-03-01T00:00:00Z`) or epoch milliseconds."
#: query parameters several analytics endpoints share
SinceStart = Annotated[str | None, Query(description=TIME + " Default: the beginning.")]
UntilNow = Annotated[str | None, Query(description=TIME + " Default: now.")]
FirstTouchChannel = Annotated[str | None, Query(description="Only this first-touch channel.")]
FirstTouchCampaign = Annotated[str | None, Query(description="Only this first-touch campaign.")]


def _selected(
    request: Request, channel: FirstTouchChannel = None, campaign: FirstTouchCampaign = None
) -> Selection:
    """The customers an analytics answer counts: first-touch channel and campaign, and one of
    the wanted values of every ``trait.<name>`` named."""
    return Selection(channel, campaign, trait_filters(request.query_params))


def _window(since: SinceStart = None, until: UntilNow = None) -> tuple[int, int]:
    """``[since, until]`` in epoch ms (default: the beginning, now)."""
    return window(since, until, int(time.time() * 1000))


#: The customers selected (``channel``, ``campaign``, ``trait.<name>``).
Selected = Annotated[Selection, Depends(_selected)]
#: The window ``[since, until]`` in epoch ms, up to now by default.
Window = Annotated[tuple[int, int], Depends(_window)]

Config = Annotated[ApiSettings, Depends(_settings)]
Reads = Annotated[ReadModel, Depends(_read_model)]
Erasing = Annotated[Eraser, Depends(_eraser)]
Stages = Annotated[StageModel, Depends(_stage_model)]
CustomerRef = Annotated[Identifier, Depends(_customer_ref)]
ReadScope = Annotated[ApiToken, Depends(require("read"))]
AdminScope = Annotated[ApiToken, Depends(require("admin"))]
