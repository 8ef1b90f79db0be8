"""Triggers: act when a condition has held for a duration (pure: parsing and evaluation).

A trigger in the rules file's ``triggers:`` section::

    - name: cart-abandonment
      when: {entered: decision}          # or {survey: nps, score_at_most: 6}
      unless: {entered: purchase}        # and/or {any_event: true}
      where: {channel: email}            # optional: channel of the entry, first campaign
      after: 2h                          # s, m, h, d (0 = at once)

An *occurrence* is one moment the trigger armed (the stage entry, or each matching survey
answer) and its *due* time, ``start + after`` in event time. It is **valid** unless an
``unless`` stage was entered at or before its due time; with ``unless: {any_event: true}``
each quiet gap of at least ``after`` after the arming is an occurrence (it starts at the
arming or at the last event before the gap; an event inside ``(start, due]`` voids it).

:func:`occurrences` computes the valid occurrences from a customer's profile (and, for
``any_event``, the event times after the arming); :func:`evaluate` compares them with what
was fired already and the clock: fire what is valid and due (``now >= due + lateness``),
cancel what was fired and is no longer valid. Facts only grow, so the final set of firings
(fired minus cancelled) is the valid set, whatever the arrival order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from touchpath.stages import RulesError
from touchpath.surveys import SURVEY_EVENTS

_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_KEYS = {"name", "when", "unless", "where", "after", "description"}
_WHEN_KEYS = {"entered", "survey", "score_at_most", "score_at_least"}
_UNLESS_KEYS = {"entered", "any_event"}
_WHERE_KEYS = {"channel", "campaign"}
SURVEY_KINDS = frozenset(kind for kind, _, _ in SURVEY_EVENTS.values())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Occurrences considered per customer and trigger (the latest); older ones are settled.
MAX_OCCURRENCES = 20


@dataclass(frozen=True, slots=True)
class Trigger:
    """One validated trigger."""

    name: str
    after_ms: int
    entered: str | None = None
    survey: str | None = None
    score_at_most: int | None = None
    score_at_least: int | None = None
    unless_entered: tuple[str, ...] = ()
    unless_any_event: bool = False
    where_channel: frozenset[str] = frozenset()
    where_campaign: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True, slots=True)
class TriggerModel:
    """The triggers of a rules file, by name (empty when it has none)."""

    triggers: tuple[Trigger, ...] = ()

    def get(self, name: str) -> Trigger | None:
        return next((t for t in self.triggers if t.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.triggers)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A moment a trigger armed for a customer, when it is due, and the event behind it."""

    firing_id: str
    trigger: str
    start_ms: int
    due_ms: int
    cause: Mapping[str, Any]


@dataclass(slots=True)
class Outcome:
    """What an evaluation decided: occurrences to fire, fired ids to cancel, and the event
    time at which to evaluate again (None: nothing can change without a profile change)."""

    fire: list[Occurrence] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    next_ms: int | None = None


# --- parsing ---------------------------------------------------------------------------------


def parse_duration(value: object, where: str) -> int:
    """``2h``, ``90m``, ``60d``, ``30s``, ``500ms`` or a number of seconds, in milliseconds."""
    if isinstance(value, bool):
        raise RulesError(f"{where}: 'after' must be a duration like 30s, 90m, 2h or 60d")
    if isinstance(value, int | float):
        value = f"{value}s"
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise RulesError(f"{where}: 'after' must be a duration like 30s, 90m, 2h or 60d")
    return int(float(match.group(1)) * _UNITS_MS[match.group(2) or "s"])


def parse_triggers(doc: Mapping[str, Any], stages: Sequence[str], origin: str) -> TriggerModel:
    """The ``triggers`` section of a parsed rules document, validated against its stages."""
    raw = doc.get("triggers")
    if raw is None:
        return TriggerModel()
    if not isinstance(raw, list):
        raise RulesError(f"{origin}: 'triggers' must be a list")
    triggers = tuple(_trigger(t, i, stages, origin) for i, t in enumerate(raw))
    names = [t.name for t in triggers]
    if len(set(names)) != len(names):
        raise RulesError(f"{origin}: 'triggers' names a trigger twice")
    return TriggerModel(triggers)


def load_triggers(path: Path | None = None) -> TriggerModel:
    """The triggers of the rules file (the default rules when ``path`` is None)."""
    if path is None:
        text, origin = resources.files("touchpath").joinpath("rules/default.yaml").read_text(), ""
    else:
        text, origin = Path(path).read_text(), str(path)
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise RulesError(f"{origin or '<rules>'}: expected a mapping")
    return parse_triggers(doc, doc.get("stages") or [], origin or "<rules>")


def _mapping(raw: object, allowed: set[str], where: str, required: bool) -> dict[str, Any]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise RulesError(f"{where}: must be a non-empty mapping with keys {sorted(allowed)}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return raw


def _stage(value: object, stages: Sequence[str], where: str) -> str:
    if value not in stages:
        raise RulesError(f"{where}: unknown stage {value!r}; declared: {list(stages)}")
    return str(value)


def _trigger(raw: object, index: int, stages: Sequence[str], origin: str) -> Trigger:
    where = f"{origin}: triggers[{index}]"
    spec = _mapping(raw, _KEYS, where, True)
    name = spec.get("name")
    if not isinstance(name, str) or not _SLUG.match(name):
        raise RulesError(f"{where}: 'name' must be a lower-case slug, got {name!r}")
    where = f"{origin}: trigger {name!r}"
    if "after" not in spec:
        raise RulesError(f"{where}: 'after' is required (a duration; 0s fires at once)")
    when = _mapping(spec.get("when"), _WHEN_KEYS, f"{where}: when", True)
    unless = _mapping(spec.get("unless"), _UNLESS_KEYS, f"{where}: unless", False)
    filters = _mapping(spec.get("where"), _WHERE_KEYS, f"{where}: where", False)
    entered, survey = when.get("entered"), when.get("survey")
    if (entered is None) == (survey is None):
        raise RulesError(f"{where}: 'when' needs exactly one of 'entered' or 'survey'")
    scores = {k: when.get(k) for k in ("score_at_most", "score_at_least")}
    if entered is not None:
        entered = _stage(entered, stages, f"{where}: when.entered")
        if any(v is not None for v in scores.values()):
            raise RulesError(f"{where}: score_at_most/score_at_least go with 'survey'")
    elif survey not in SURVEY_KINDS:
        raise RulesError(f"{where}: unknown survey {survey!r}; use one of {sorted(SURVEY_KINDS)}")
    for key, value in scores.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise RulesError(f"{where}: when.{key} must be an integer")
    if filters and entered is None:
        raise RulesError(f"{where}: 'where' filters a stage entry: use it with when.entered")
    any_event = unless.get("any_event", False)
    if not isinstance(any_event, bool):
        raise RulesError(f"{where}: unless.any_event must be true or false")
    return Trigger(
        name=name,
        after_ms=parse_duration(spec["after"], where),
        entered=entered,
        survey=survey,
        score_at_most=scores["score_at_most"],
        score_at_least=scores["score_at_least"],
        unless_entered=tuple(
            _stage(s, stages, f"{where}: unless.entered") for s in _listed(unless.get("entered"))
        ),
        unless_any_event=any_event,
        where_channel=_lowered(filters.get("channel"), f"{where}: where.channel"),
        where_campaign=_lowered(filters.get("campaign"), f"{where}: where.campaign"),
        description=str(spec.get("description") or "")[:200],
    )


def _listed(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _lowered(value: object, where: str) -> frozenset[str]:
    values = _listed(value)
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise RulesError(f"{where}: must be a text value or a list of them")
    return frozenset(str(v).strip().lower() for v in values)


# --- evaluation ------------------------------------------------------------------------------


def firing_id(customer_id: str, trigger: str, start_ms: int, key: str) -> str:
    """The deterministic id of an occurrence: the same whoever computes it, however often."""
    text = f"{customer_id}|{trigger}|{start_ms}|{key}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def armings(trigger: Trigger, profile: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """When the trigger armed for this customer and the event behind each (time order)."""
    if trigger.entered is not None:
        entry = profile.get("history", {}).get(trigger.entered)
        if entry is None or not _passes(trigger, profile, entry):
            return []
        at_ms, message_id, channel = entry[:3]
        cause = {"at_ms": at_ms, "message_id": message_id, "channel": channel}
        return [(at_ms, {**cause, "reason": f"entered {trigger.entered}"})]
    found = []
    for kind, score, at_ms, _stage in profile.get("surveys") or ():
        if kind != trigger.survey:
            continue
        if trigger.score_at_most is not None and score > trigger.score_at_most:
            continue
        if trigger.score_at_least is not None and score < trigger.score_at_least:
            continue
        found.append((at_ms, {"at_ms": at_ms, "reason": f"{kind} score {score}"}))
    return sorted(found, key=lambda a: (a[0], a[1]["reason"]))[-MAX_OCCURRENCES:]


def _passes(trigger: Trigger, profile: Mapping[str, Any], entry: Sequence[Any]) -> bool:
    if trigger.where_channel and str(entry[2]).lower() not in trigger.where_channel:
        return False
    if trigger.where_campaign:
        campaign = (profile.get("first_touch") or {}).get("campaign")
        return isinstance(campaign, str) and campaign.strip().lower() in trigger.where_campaign
    return True


def occurrences(
    trigger: Trigger,
    profile: Mapping[str, Any],
    event_times: Sequence[tuple[int, str]] = (),
) -> list[Occurrence]:
    """The valid occurrences of a trigger for a customer. ``event_times`` are the customer's
    events (time, messageId) at or after the arming, needed only for ``unless: any_event``."""
    found = []
    for start, cause in armings(trigger, profile):
        if trigger.unless_any_event:
            found += _quiet_gaps(trigger, profile["id"], start, cause, event_times)
        else:
            found.append(_occurrence(trigger, profile["id"], start, cause))
    history = profile.get("history", {})
    blockers = [history[s] for s in trigger.unless_entered if s in history]
    return [o for o in found if not any(b[0] <= o.due_ms for b in blockers)]


def _occurrence(trigger: Trigger, cid: str, start: int, cause: Mapping[str, Any]) -> Occurrence:
    key = str(cause.get("message_id") or cause.get("reason"))
    return Occurrence(
        firing_id(cid, trigger.name, start, key),
        trigger.name,
        start,
        start + trigger.after_ms,
        dict(cause),
    )


def _quiet_gaps(
    trigger: Trigger,
    cid: str,
    start: int,
    cause: Mapping[str, Any],
    event_times: Sequence[tuple[int, str]],
) -> list[Occurrence]:
    """Each stretch of at least ``after`` without events, from the arming on: it starts at
    the arming or at the event before it; the last one is open (it may still be voided)."""
    gaps = []
    gap_start, gap_cause = start, dict(cause)
    for at_ms, message_id in sorted(event_times):
        if at_ms <= gap_start:
            continue
        if at_ms > gap_start + trigger.after_ms:
            gaps.append(_occurrence(trigger, cid, gap_start, gap_cause))
        gap_start = at_ms
        gap_cause = {"at_ms": at_ms, "message_id": message_id, "reason": "last event"}
    gaps.append(_occurrence(trigger, cid, gap_start, gap_cause))
    return gaps


def evaluate(
    trigger: Trigger,
    profile: Mapping[str, Any] | None,
    fired: Mapping[str, int],
    now_ms: int,
    lateness_ms: int,
    event_times: Sequence[tuple[int, str]] = (),
    recheck_ms: int = 3_600_000,
) -> Outcome:
    """Decide for one customer and trigger at wall-clock ``now_ms``: fire each valid
    occurrence whose due time is at least ``lateness_ms`` past (``now >= due + lateness``)
    and not fired yet; cancel each fired id that is no longer valid. ``next_ms`` is the event
    time at which to look again (the loop runs it at ``next_ms + lateness``). ``fired`` maps
    the ids fired so far to their start times; those older than the armings considered
    (:data:`MAX_OCCURRENCES`) are settled."""
    outcome = Outcome()
    valid = occurrences(trigger, profile, event_times) if profile is not None else []
    ids = {o.firing_id for o in valid}
    armed = armings(trigger, profile) if profile is not None else []
    oldest = armed[0][0] if len(armed) >= MAX_OCCURRENCES else None
    outcome.cancel = sorted(
        fid
        for fid, start in fired.items()
        if fid not in ids and (oldest is None or start >= oldest)
    )
    cutoff = now_ms - lateness_ms
    waiting = []
    for occurrence in valid:
        if occurrence.firing_id in fired:
            continue
        if occurrence.due_ms <= cutoff:
            outcome.fire.append(occurrence)
        else:
            waiting.append(occurrence.due_ms)
    if waiting:
        outcome.next_ms = min(waiting)
    elif trigger.unless_any_event and valid:
        # quiet gaps end with events that do not change the profile: look again later
        outcome.next_ms = cutoff + min(trigger.after_ms, recheck_ms) + 1
    return outcome


def wake_ms(
    model: TriggerModel,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
) -> dict[str, int]:
    """For a customer whose profile changed: per trigger, the event time at which to evaluate
    it (the earliest due time of its armings, old or new: a past one means "now", to cancel
    or fire what the change decided)."""
    wakes = {}
    for trigger in model.triggers:
        dues = [
            start + trigger.after_ms
            for profile in (old, new)
            if profile is not None
            for start, _ in armings(trigger, profile)
        ]
        if dues:
            wakes[trigger.name] = min(dues)
    return wakes


# --- firings over time (the journey map): a count per event-time day and trigger ------------

#: Days a day's firing counts are kept after that day (``P:trg:n:<day>``): the bound.
COUNT_DAYS = 400
DAY_MS = 86_400_000
FIRED_COUNT, CANCELLED_COUNT = "fired", "cancelled"


def day_of(ms: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of an epoch-ms time."""
    return (_EPOCH + timedelta(milliseconds=ms)).date().isoformat()


def count_field(kind: str, trigger: str) -> str:
    """The field of a day's count hash: ``fired<US><trigger>`` or ``cancelled<US><trigger>``."""
    return f"{kind}\x1f{trigger}"


def count_expiry_s(due_ms: int) -> int:
    """When the count of a firing due at ``due_ms`` expires (epoch s): :data:`COUNT_DAYS`
    after the end of its day, so at most that many days' counts exist."""
    return (due_ms // DAY_MS + 1 + COUNT_DAYS) * DAY_MS // 1000
