"""Customer endpoints: stage (the hot path), profile, journey, erasure."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import schemas, views
from api.auth import authorize
from api.deps import (
    TYPE_DESCRIPTION,
    AdminScope,
    Config,
    CustomerRef,
    Erasing,
    Reads,
    ReadScope,
    Stages,
    parse_identifier,
)
from api.docs import problem
from api.pagination import decode_cursor, encode_cursor, page_before
from api.readmodel import ReadModel
from api.timeparse import FOREVER_MS, iso, to_ms, window
from infra.problems import JSONBody, Problem
from infra.routing import DirectRoute
from touchpath.identifiers import CUSTOMER_ID, Identifier
from touchpath.stages import StageModel

hot = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=DirectRoute)
router = APIRouter(prefix="/v1/customers", tags=["customers"])
NOT_FOUND = problem(404, "No customer has this identifier.")
IDENTIFIER_PARAMETERS = [
    {
        "name": "identifier",
        "in": "path",
        "required": True,
        "description": "The identifier's value.",
        "schema": {"type": "string"},
        "example": "ada@example.com",
    },
    {
        "name": "type",
        "in": "query",
        "required": False,
        "description": TYPE_DESCRIPTION,
        "schema": {"type": "string", "default": "user_id"},
        "example": "email",
    },
]
AS_OF_PARAMETER = {
    "name": "as_of",
    "in": "query",
    "required": False,
    "description": "The stage at this past time (ISO-8601 or epoch ms), as far as the events "
    "known now tell. Default: now.",
    "schema": {"type": "string"},
    "example": "2026-03-01T00:00:00Z",
}


async def _profile(reads: ReadModel, ref: Identifier) -> dict[str, Any]:
    profile = await reads.profile_of(ref.key())
    if profile is None:
        kind = ref.kind.removeprefix("ext:")
        raise Problem(404, "Not Found", f"no customer has this {kind}")
    return profile


@hot.get(
    "/{identifier}/stage",
    summary="A customer's current stage, by any identifier",
    response_model=schemas.StageAnswer,
    responses=NOT_FOUND,
    openapi_extra={"parameters": [*IDENTIFIER_PARAMETERS, AS_OF_PARAMETER]},
)
async def customer_stage(request: Request) -> Response:
    """The furthest stage the customer reached, when it entered it (ISO-8601), the furthest
    stage it had reached before, and the event that caused the entry. ``stage`` is null for
    a customer whose events matched no stage rule yet."""
    authorize(request, "read")
    query = request.query_params
    state = request.app.state
    ref = parse_identifier(
        request.path_params["identifier"],
        query.get("type", "user_id"),
        state.hash_key,
        state.settings.phone_region,
    )
    as_of = query.get("as_of") or None
    moment = None if as_of is None else to_ms(as_of, 0, "as_of")
    stages: StageModel = state.stage_model
    return JSONBody(views.stage_view(await _profile(state.read_model, ref), stages, moment))


@router.get(
    "/{identifier}",
    summary="A customer's profile",
    response_model=schemas.ProfileAnswer,
    responses=NOT_FOUND,
)
async def customer_profile(
    ref: CustomerRef, reads: Reads, stages: Stages, config: Config, _: ReadScope
) -> Response:
    """Identities, latest traits, current stage and stage history, first and last seen,
    first touch, events per channel and per type, orders and revenue — summed over every
    identity of the customer — and its lifecycle: the current **cycle** (`first`, `repeat`,
    `lapsed` or `won_back`, since when) and the history of **cycles**. A cycle begins at the
    first touch (`first`), at a purchase after the first one (`repeat`) or at the first event
    after a lapse (`won_back`); a customer who has purchased is `lapsed` once
    `TOUCHPATH_LAPSE_DAYS` whole UTC days (default 60) pass without any event, evaluated
    against the clock when asked. See the README's lifecycle model."""
    profile = await _profile(reads, ref)
    counts = await reads.counters(profile["identities"])
    view = views.profile_view(profile, counts, stages)
    view.update(views.lifecycle_view(profile, int(time.time() * 1000), config.lapse_days))
    if ref.kind == CUSTOMER_ID and ref.value != profile["id"]:
        view["merged_from"] = [ref.value]  # a former id answers with the current customer
    return JSONBody(view)


@router.get(
    "/{identifier}/journey",
    summary="A customer's timeline, newest first",
    response_model=schemas.JourneyPage,
    responses=NOT_FOUND,
)
async def customer_journey(
    ref: CustomerRef,
    reads: Reads,
    _: ReadScope,
    channel: Annotated[str | None, Query(description="Only this channel.")] = None,
    since: Annotated[str | None, Query(description="ISO-8601 time or epoch ms.")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or epoch ms.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
) -> Response:
    """The touchpoints of every identity of the customer, merged, newest first (the latest
    ``TOUCHPATH_JOURNEY_CAP`` per identifier are kept)."""
    before = decode_cursor(cursor, (int, str))
    profile = await _profile(reads, ref)
    low, high = window(since, until, FOREVER_MS)
    if before is not None:
        high = min(high, before[0])
    entries = views.journey_entries(await reads.journey(profile["identities"], low, high))
    if channel is not None:
        entries = [e for e in entries if e.get("channel") == channel]
    page, following = page_before(entries, views.journey_key, before, limit)
    return JSONBody(
        {
            "customer_id": profile["id"],
            "entries": [views.journey_view(e) for e in page],
            "next_cursor": encode_cursor(following) if following else None,
        }
    )


@router.post(
    "/{identifier}/split",
    summary="Undo a wrong merge: split an identifier off its customer",
    response_model=schemas.SplitAnswer,
    responses=NOT_FOUND,
)
async def split_customer(
    ref: CustomerRef, reads: Reads, request: Request, admin: AdminScope
) -> Response:
    """The identifier becomes a customer of its own: no tie naming it is made again, whatever
    events arrive later or are replayed; both customers' stages and histories are derived
    again and what changed is announced as corrections. The split is recorded (who, when) in
    the profiles' `refused_ties`. Needs the ``admin`` scope."""
    profile = await _profile(reads, ref)
    if len(profile["identities"]) < 2:
        raise Problem(409, "Conflict", "the customer has no other identifier to split off")
    done = await request.app.state.splitter.split(
        ref.key(), profile["id"], admin.name, int(time.time() * 1000)
    )
    if done is None:
        raise Problem(404, "Not Found", "no identity cluster holds this identifier")
    return JSONBody(
        {
            "identity": views.identity(done.identifier),
            "customer_id": done.after,
            "split_from": done.before,
            "split_by": done.by,
            "split_at": iso(done.at_ms),
        }
    )


@router.delete(
    "/{identifier}",
    summary="Erase a customer (right to be forgotten)",
    response_model=schemas.Erased,
    responses=NOT_FOUND,
)
async def erase_customer(ref: CustomerRef, eraser: Erasing, _: AdminScope) -> Response:
    """Deletes every identity of the customer and everything stored about it, atomically.
    Replays of its old events do not bring it back; an event *received* after the erasure
    starts a new customer. Needs the ``admin`` scope."""
    done = await eraser.erase(ref.key(), int(time.time() * 1000))
    if done is None:
        kind = ref.kind.removeprefix("ext:")
        raise Problem(404, "Not Found", f"no customer has this {kind}")
    return JSONBody(
        {
            "customer_id": done.customer_id,
            "erased_identities": [views.identity(key) for key in done.identities],
            "erased_at": iso(done.at_ms),
        }
    )
