"""Accounts (B2B journeys), derived on read from their members' profiles.

An account is a ``group`` call's groupId. Each customer profile keeps the accounts its
``group`` calls named, with the account traits as that customer's calls last set them and
when (``accounts: {groupId: {traits, updated}}``, ``updated`` an order key: later is
greater). The processor indexes the members (``P:acct:<groupId>:members``). An account's

* **traits** — per trait, the value of the member whose ``updated`` is latest among the
  members that set it;
* **stage** — the furthest current stage of its members in the model's order;
* **history** — per stage, the earliest entry among its members' histories.

Nothing here is stored: members move between stages in different clusters, so an account is
computed from the current profiles whenever it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from api.timeparse import iso
from api.views import identity
from touchpath.stages import StageModel

Profile = Mapping[str, Any]


def members_of(group_id: str, profiles: Iterable[Profile | None]) -> list[Profile]:
    """The profiles that (still) have the account, by customer id (the index may hold a
    customer removed a moment ago)."""
    found = [p for p in profiles if p is not None and group_id in (p.get("accounts") or {})]
    return sorted(found, key=lambda p: str(p["id"]))


def account_traits(group_id: str, members: Iterable[Profile]) -> dict[str, Any]:
    """Per trait, the latest value across the members (by ``updated``, then customer id)."""
    latest: dict[str, tuple[str, str, Any]] = {}
    for profile in members:
        account = profile["accounts"][group_id]
        when = (str(account.get("updated") or ""), str(profile["id"]))
        for name, value in (account.get("traits") or {}).items():
            if name not in latest or when > latest[name][:2]:
                latest[name] = (*when, value)
    return {name: latest[name][2] for name in sorted(latest)}


def account_history(
    members: Iterable[Profile], model: StageModel
) -> dict[str, tuple[int, str, str, str]]:
    """Per stage of the model, the earliest entry among the members:
    ``(at_ms, message_id, channel, customer_id)``."""
    earliest: dict[str, tuple[int, str, str, str]] = {}
    for profile in members:
        for stage, (at_ms, message_id, channel, *_) in (profile.get("history") or {}).items():
            entry = (int(at_ms), str(message_id), str(channel), str(profile["id"]))
            if stage in model.stages and (stage not in earliest or entry < earliest[stage]):
                earliest[stage] = entry
    return earliest


def account_stage(members: Iterable[Profile], model: StageModel) -> str | None:
    """The furthest current stage of the members in the model's order (None: none has one)."""
    current = [p.get("stage") for p in members]
    known = [s for s in current if s in model.stages]
    return max(known, key=model.index) if known else None


def account_view(group_id: str, members: list[Profile], model: StageModel) -> dict[str, Any]:
    """The answer of ``GET /v1/accounts/{groupId}`` (``members``: from :func:`members_of`)."""
    history = account_history(members, model)
    stage = account_stage(members, model)
    entry = history.get(stage) if stage else None
    return {
        "group_id": group_id,
        "traits": account_traits(group_id, members),
        "stage": stage,
        "entered_at": iso(entry[0]) if entry else None,
        "stage_history": [
            {
                "stage": s,
                "entered_at": iso(history[s][0]),
                "message_id": history[s][1],
                "channel": history[s][2],
                "customer_id": history[s][3],
            }
            for s in model.stages
            if s in history
        ],
        "members": len(members),
    }


def account_member(profile: Profile) -> dict[str, Any]:
    """A member as listed by ``GET /v1/accounts/{groupId}/members``."""
    stage = profile.get("stage")
    entry = (profile.get("history") or {}).get(stage) if stage else None
    return {
        "customer_id": profile["id"],
        "identities": [identity(k) for k in profile.get("identities", [])],
        "stage": stage,
        "entered_at": iso(entry[0]) if entry else None,
        "traits": profile.get("traits") or {},
    }


def trait_groups(
    trait: str, accounts: Mapping[str, Sequence[Profile]], name: Callable[[object], str]
) -> dict[str, str]:
    """Customer id → ``name`` of its account's ``trait`` (what ``/v1/funnel?group_by=
    account.<trait>`` splits by). A customer of several accounts counts in the one it was
    last grouped with (latest ``updated``, then groupId), so each counts once."""
    best: dict[str, tuple[str, str, str]] = {}
    for group_id, members in accounts.items():
        value = name(account_traits(group_id, members).get(trait))
        for profile in members:
            when = (str(profile["accounts"][group_id].get("updated") or ""), group_id)
            cid = str(profile["id"])
            if cid not in best or when > best[cid][:2]:
                best[cid] = (*when, value)
    return {cid: found[2] for cid, found in best.items()}
