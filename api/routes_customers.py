"""Customer endpoints: stage, profile, journey, erase."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import AdminScope, CustomerRef, Reads, ReadScope, Stages
from api.timeparse import decode_cursor, encode_cursor, iso, to_ms
from infra.problems import JSONBody, Problem
from touchpath.identifiers import Identifier
from touchpath.journey import latest_traits, sum_counts

router = APIRouter(prefix="/v1/customers", tags=["customers"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No customer has this identifier (problem+json)."}
}
STAGE_EXAMPLE = {
    "customer_id": "cus_4c1f0e9a2b7d",
    "stage": "decision",
    "entered_at": "2026-03-02T09:01:00.000+00:00",
    "previous_stage": "consideration",
    "caused_by": {"message_id": "m-17", "at": "2026-03-02T09:01:00.000+00:00", "channel": "web"},
}


async def _profile(reads: Reads, ref: Identifier) -> dict[str, Any]:
    profile = await reads.profile_of(ref.key())
    if profile is None:
        raise Problem(404, "Customer not found", f"no customer has {ref.kind} {ref.value!r}")
    return profile


@router.get(
    "/{identifier}/stage",
    summary="Current stage of a customer, by any identifier",
    responses={**NOT_FOUND, 200: {"content": {"application/json": {"example": STAGE_EXAMPLE}}}},
)
async def customer_stage(
    ref: CustomerRef, reads: Reads, stages: Stages, _: ReadScope, as_of: str | None = None
) -> JSONBody:
    """The furthest stage reached, when it was entered, the stage before it, and why.

    With ``as_of`` (ISO-8601): the stage the customer was in at that time, as far as the
    events known now tell.
    """
    profile = await _profile(reads, ref)
    stage, history = profile["stage"], profile["history"]
    if as_of is not None:
        moment = to_ms(as_of, 0, "as_of")
        history = {s: e for s, e in history.items() if e[0] <= moment}
        stage = max(history, key=stages.index) if history else None
    answer: dict[str, Any] = {
        "customer_id": profile["id"],
        "stage": stage,
        "entered_at": None,
        "previous_stage": None,
        "caused_by": None,
    }
    if stage is not None:
        at_ms, message_id, channel = history[stage]
        earlier = [s for s in stages.stages[: stages.index(stage)] if s in history]
        answer |= {
            "entered_at": iso(at_ms),
            "previous_stage": earlier[-1] if earlier else None,
            "caused_by": {"message_id": message_id, "at": iso(at_ms), "channel": channel},
        }
    return JSONBody(answer)  # rendered directly: this is the hot path


@router.get("/{identifier}", summary="Customer profile", responses=NOT_FOUND)
async def customer_profile(ref: CustomerRef, reads: Reads, _: ReadScope) -> dict[str, Any]:
    """Identities, traits, stage and history, first/last seen, channels, counts, revenue."""
    profile = await _profile(reads, ref)
    data = await reads.anchors(profile["identities"])
    counts = sum_counts(data)
    return {
        "customer_id": profile["id"],
        "identities": [_identity(key) for key in profile["identities"]],
        "traits": latest_traits(data),
        "stage": profile["stage"],
        "stage_history": [
            {"stage": s, "entered_at": iso(e[0]), "message_id": e[1], "channel": e[2]}
            for s, e in profile["history"].items()
        ],
        "first_seen": iso(counts.get("first")),
        "last_seen": iso(counts.get("last")),
        "first_touch": profile.get("first_touch"),
        "channels": {
            k.removeprefix("channel:"): v for k, v in counts.items() if k.startswith("channel:")
        },
        "counts": {
            "events": counts.get("events", 0),
            **{k.removeprefix("type:"): v for k, v in counts.items() if k.startswith("type:")},
        },
        "orders": counts.get("orders", 0),
        "revenue": counts.get("revenue", 0),
        "refused_ties": profile.get("refused_ties", []),
    }


def _identity(key: str) -> dict[str, str]:
    found = Identifier.parse(key)
    return {"type": found.kind.removeprefix("ext:"), "value": found.value}


@router.get("/{identifier}/journey", summary="Timeline, newest first", responses=NOT_FOUND)
async def customer_journey(
    ref: CustomerRef,
    reads: Reads,
    _: ReadScope,
    channel: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Touchpoints across all of the customer's identities; follow ``next_cursor``."""
    profile = await _profile(reads, ref)
    position = decode_cursor(cursor, [float("inf"), "\uffff"])
    before_at, before_id = float(position[0]), str(position[1])
    entries = await reads.journey(
        profile["identities"],
        to_ms(since, 0, "since"),
        min(to_ms(until, float("inf"), "until"), float(before_at)),
    )
    page = [
        e
        for e in entries
        if (e["at"], e["id"]) < (before_at, before_id)
        and (channel is None or e["channel"] == channel)
    ][:limit]
    for entry in page:
        entry["time"] = iso(entry["at"])
    more = len(page) == limit
    return {
        "customer_id": profile["id"],
        "entries": page,
        "next_cursor": encode_cursor(page[-1]["at"], page[-1]["id"]) if more else None,
    }


@router.delete(
    "/{identifier}", summary="Erase a customer (right to be forgotten)", responses=NOT_FOUND
)
async def erase_customer(
    ref: CustomerRef, reads: Reads, request: Request, _: AdminScope
) -> dict[str, Any]:
    """Delete every identity, the journey and counts; replays cannot bring them back."""
    profile = await _profile(reads, ref)
    script = request.app.state.erase_script
    await script(
        args=[reads.keys.prefix, profile["id"], int(time.time() * 1000), *profile["identities"]]
    )
    return {"erased": profile["id"], "identities": len(profile["identities"])}
