"""Which stage changes to announce for a customer, given what was announced before
(entries, corrections), as pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from touchpath.funnel_rows import current_entry
from touchpath.stages import (
    StageModel,
)

#: What ``change`` an announcement carries: a stage entered beyond every stage announced
#: before (``advance``), or a correction of the history announced (the rest).
ENTERED, INSERTED, MOVED, REMOVED = "entered", "inserted", "moved", "removed"


def announced_record(profile: Mapping[str, Any]) -> dict[str, list[Any]]:
    """What has been announced of a customer once its changes are out: every stage entry of
    its history as ``{stage: [at_ms, messageId, channel]}`` (stored in ``P:announced``)."""
    return {stage: list(entry[:3]) for stage, entry in profile["history"].items()}


def stage_changes(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    model: StageModel,
    announced: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One announcement per stage entry that differs from what was announced, in stage order.

    ``announced`` maps a customer id to its :func:`announced_record` as last stored (or, as
    stores written before every entry was announced hold it, the one entry ``[stage, at_ms,
    messageId]`` last announced). An entry a customer merged into this one (whose id is gone,
    all of whose identities this one holds) was told exactly counts as told. So a replay or a
    re-resolution announces nothing, and a subscriber folding a customer's announcements
    holds its history.
    """
    changes = []
    for profile in new.values():
        if announced.get(profile["id"]) == announced_record(profile):
            continue  # all told already (the common case: nothing to compare)
        predecessors = _predecessors(profile, old)
        mine = set(profile["identities"])
        merged = [p for p in predecessors if p["id"] not in new and mine >= set(p["identities"])]
        told = _told(profile, merged, announced, old.get(profile["id"]))
        changes += _differences(profile, told, predecessors, model)
    return changes


def _told(
    profile: Mapping[str, Any],
    merged: Sequence[Mapping[str, Any]],
    announced: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> dict[str, list[Any]]:
    """The entries announced for this customer, and those of its history a customer merged
    into it was told exactly."""
    told = _record(announced.get(profile["id"]), before)
    for other in merged:
        theirs = _record(announced.get(other["id"]), other)
        for stage, entry in profile["history"].items():
            if stage not in told and theirs.get(stage) == list(entry[:3]):
                told[stage] = list(entry[:3])
    return told


def _record(stored: Any, before: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """A stored announcement record as ``{stage: [at_ms, messageId, channel]}``; the former
    one-entry form stands for the history it was the current entry of."""
    if isinstance(stored, dict):
        return {stage: list(entry) for stage, entry in stored.items()}
    if not stored:
        return {}
    stage, at_ms, message_id = stored[:3]
    if before is not None and current_entry(before) == (stage, at_ms, message_id):
        return announced_record(before)
    return {stage: [at_ms, message_id, None]}


def _differences(
    profile: Mapping[str, Any],
    told: Mapping[str, list[Any]],
    predecessors: Sequence[Mapping[str, Any]],
    model: StageModel,
) -> list[dict[str, Any]]:
    """The announcements that turn ``told`` into the profile's history, in stage order
    (stages the rules no longer have last)."""
    now = announced_record(profile)
    furthest = max((model.position(s) for s in told), default=-1)
    merged = sorted(p["id"] for p in predecessors if p["id"] != profile["id"])
    stages = [*model.stages, *sorted(set(told) - set(model.stages))]
    found = []
    for stage in stages:
        entry, before = now.get(stage), told.get(stage)
        if entry is not None and before is not None and entry[:2] == before[:2]:
            continue
        if entry is None and before is None:
            continue
        if entry is None:
            change = REMOVED
        elif before is None:
            change = ENTERED if model.position(stage) > furthest else INSERTED
        else:
            change = MOVED
        found.append(_announcement(profile, stage, change, entry, before, merged, model))
    return found


def _predecessors(
    profile: Mapping[str, Any], old: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    same = old.get(profile["id"])
    identities = set(profile["identities"])
    others = [
        p
        for cid, p in sorted(old.items())
        if cid != profile["id"] and identities & set(p["identities"])
    ]
    return ([same] if same else []) + others


def _below(history: Mapping[str, Any], stage: str, model: StageModel) -> str | None:
    """The furthest stage of a history before ``stage`` (where the customer came from)."""
    index, best, found = model.position(stage), -1, None
    for other in history:
        position = model.position(other)
        if best < position < index:
            best, found = position, other
    return found


def _announcement(
    profile: Mapping[str, Any],
    stage: str,
    change: str,
    entry: Sequence[Any] | None,
    before: Sequence[Any] | None,
    merged: list[str],
    model: StageModel,
) -> dict[str, Any]:
    """One announcement: ``stage`` and what happened to its entry (``change``), the entry
    (``at_ms``/``message_id``/``channel``; for ``removed`` the one withdrawn) and the one it
    replaces (``previous_*``); ``from``/``to`` read as a transition: for an entry, the stage
    before it in the history → ``stage``; for a removal, ``stage`` → the current stage."""
    history = profile["history"]
    shown = entry if entry is not None else (before or [None, None, None])
    at_ms, message_id, channel = shown[:3]
    previous = before if change != ENTERED else None
    if change == ENTERED:
        key = f"{profile['id']}|{stage}|{at_ms}|{message_id}"  # as before corrections existed
    else:
        key = f"{profile['id']}|{stage}|{change}|{list(before or [])[:2]}|{at_ms}|{message_id}"
    return {
        "change_id": hashlib.blake2b(key.encode(), digest_size=12).hexdigest(),
        "customer_id": profile["id"],
        "identities": profile["identities"],
        "stage": stage,
        "change": change,
        "from": stage if change == REMOVED else _below(history, stage, model),
        "to": profile.get("stage") if change == REMOVED else stage,
        "at_ms": at_ms,
        "message_id": message_id,
        "channel": channel,
        "previous_at_ms": previous[0] if previous else None,
        "previous_message_id": previous[1] if previous else None,
        "current": profile.get("stage"),
        "kind": "advance" if change == ENTERED else "correction",
        "merged_from": merged,
    }
