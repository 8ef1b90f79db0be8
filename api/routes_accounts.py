"""Account endpoints (B2B journeys): an account, its members, the accounts in a stage."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api import accounts
from api import schemas_accounts as schemas
from api.deps import Reads, ReadScope, Stages
from api.docs import problem
from api.pagination import Position, decode_cursor, encode_cursor, filtered_page
from api.readmodel import ReadModel
from infra.problems import JSONBody, Problem
from touchpath.stages import StageModel

router = APIRouter(prefix="/v1", tags=["accounts"])
NOT_FOUND = problem(404, "No customer belongs to this account.")
ACCOUNTS_PER_BATCH = 100
MAX_BATCHES = 10  # per page of /v1/stages/{stage}/accounts
GroupId = Annotated[
    str, Path(description="The account's groupId (of `group` calls).", examples=["acme"])
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the page before.")]


async def _members(reads: ReadModel, group_id: str) -> list[accounts.Profile]:
    members = accounts.members_of(group_id, (await reads.account_profiles([group_id]))[0])
    if not members:
        raise Problem(404, "Not Found", "no customer belongs to this account")
    return members


@router.get(
    "/accounts/{group_id}",
    summary="An account: traits, stage (the furthest of its members') and history",
    response_model=schemas.AccountAnswer,
    responses=NOT_FOUND,
)
async def account(group_id: GroupId, reads: Reads, stages: Stages, _: ReadScope) -> Response:
    """An account is a `group` call's groupId. **traits**: per trait, the value set by the
    member whose latest `group` call for the account is the latest (a `group` call's traits are
    the account's, never the person's); **stage**: the furthest current stage of its members
    in the model's order; **stage_history**: per stage, the earliest entry among its members
    (and whose it was); **members**: how many customers belong to it."""
    return JSONBody(accounts.account_view(group_id, await _members(reads, group_id), stages))


@router.get(
    "/accounts/{group_id}/members",
    summary="The customers of an account",
    response_model=schemas.AccountMembersPage,
    responses=NOT_FOUND,
)
async def account_members(
    group_id: GroupId, reads: Reads, _: ReadScope, limit: Limit = 100, cursor: Cursor = None
) -> Response:
    """The customers whose `group` calls named the account, by customer id, with their
    own stage and (person) traits."""
    after = decode_cursor(cursor, (str,))
    ids = await reads.account_member_ids(group_id)
    if not ids:
        raise Problem(404, "Not Found", "no customer belongs to this account")
    start = bisect_right(ids, after[0]) if after else 0
    chosen = ids[start : start + limit]
    members = accounts.members_of(group_id, await reads.profiles(chosen))
    more = start + limit < len(ids)
    return JSONBody(
        {
            "group_id": group_id,
            "members": [accounts.account_member(p) for p in members],
            "next_cursor": encode_cursor((chosen[-1],)) if more and chosen else None,
        }
    )


@router.get(
    "/stages/{stage}/accounts",
    summary="The accounts now in a stage (the furthest stage of their members)",
    response_model=schemas.StageAccountsPage,
    responses=problem(404, "The stage is not in the model."),
    tags=["stages"],
)
async def stage_accounts(
    stage: str,
    reads: Reads,
    stages: Stages,
    _: ReadScope,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Accounts whose current stage is ``stage``, by groupId. Accounts are computed from
    their members as they are asked for, so a page scans a bounded number of accounts and may
    hold fewer than ``limit``: continue while ``next_cursor`` is set."""
    if stage not in stages.stages:
        raise Problem(404, "Not Found", f"unknown stage {stage!r}; stages: {list(stages.stages)}")
    after = decode_cursor(cursor, (str,))
    page, following = await filtered_page(
        _fetch_accounts(reads, stages),
        lambda view: view["stage"] == stage,
        after,
        limit,
        ACCOUNTS_PER_BATCH,
        MAX_BATCHES,
    )
    return JSONBody(
        {
            "stage": stage,
            "accounts": [
                {k: view[k] for k in ("group_id", "entered_at", "members", "traits")}
                for view in page
            ],
            "next_cursor": encode_cursor(following) if following else None,
        }
    )


def _fetch_accounts(reads: ReadModel, stages: StageModel) -> Any:
    """``fetch`` for :func:`api.pagination.filtered_page`: account views after a groupId."""

    async def fetch(position: Position | None, count: int) -> Sequence[tuple[Position, Any]]:
        group_ids = await reads.accounts_after(position[0] if position else None, count)
        found = await reads.account_profiles(group_ids)
        views = []
        for group_id, profiles in zip(group_ids, found, strict=True):
            members = accounts.members_of(group_id, profiles)
            views.append(((group_id,), accounts.account_view(group_id, members, stages)))
        return views

    return fetch
