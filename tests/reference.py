"""An in-memory mirror of the journey store's semantics, for property tests of the pure core.

It folds event effects exactly as ``processor/ingest.lua`` does (dedup per anchor, min stage
candidates, max traits, min first-seen, min tie order) and derives customers per raw identity
component with the same pure functions the processor uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from touchpath.events import format_time
from touchpath.identity import TIE_SEPARATOR, IdentityPolicy
from touchpath.journey import (
    AnchorData,
    announced_record,
    derive_profiles,
    effects_of,
    stage_changes,
)
from touchpath.reevaluation import entries_of, rewrite
from touchpath.stages import StageModel


@dataclass
class ReferenceStore:
    model: StageModel
    policy: IdentityPolicy = field(default_factory=IdentityPolicy)
    seen: set[tuple[str, str]] = field(default_factory=set)
    anchors: dict[str, AnchorData] = field(default_factory=dict)
    journeys: dict[str, set[bytes]] = field(default_factory=dict)
    first_seen: dict[str, str] = field(default_factory=dict)
    ties: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    announcements: list[dict[str, Any]] = field(default_factory=list)
    announced: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def apply_batch(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self._apply(event)
        self._resolve()

    def _apply(self, event: Mapping[str, Any]) -> None:
        effect = effects_of(event, self.model, self.policy)
        if (effect.anchor, effect.message_id) in self.seen:
            return
        self.seen.add((effect.anchor, effect.message_id))
        data = self.anchors.setdefault(effect.anchor, AnchorData())
        self.journeys.setdefault(effect.anchor, set()).add(effect.entry)
        for name, n in effect.counts.items():
            data.counts[name] = str(int(data.counts.get(name, "0")) + n)
        if effect.revenue:  # as ingest.lua's HINCRBYFLOAT c:revenue
            data.counts["revenue"] = str(float(data.counts.get("revenue", "0")) + effect.revenue)
        for stage, candidate in effect.stages.items():
            if stage not in data.stages or candidate < data.stages[stage]:
                data.stages[stage] = candidate
        for member, at in effect.conditional.items():
            if (member, at) not in data.conditional:
                data.conditional.append((member, at))
        for name, value in effect.traits.items():
            if value > data.traits.get(name, ""):
                data.traits[name] = value
        if not data.first_touch or effect.first_touch < data.first_touch:
            data.first_touch = effect.first_touch
        for key in effect.identifiers:
            if key not in self.first_seen or effect.order < self.first_seen[key]:
                self.first_seen[key] = effect.order
        if effect.tie and (effect.tie not in self.ties or effect.order < self.ties[effect.tie]):
            self.ties[effect.tie] = effect.order

    def reevaluate(self, model: StageModel) -> None:
        """Switch to other rules and bring every anchor's candidates to them from its
        timeline, as the processor does (:func:`touchpath.reevaluation.rewrite`)."""
        self.model = model
        for anchor, data in self.anchors.items():
            entries = entries_of(self.journeys.get(anchor, ()))
            fields = {f"s:{stage}": value for stage, value in data.stages.items()}
            fields.update({f"t:{name}": value for name, value in data.traits.items()})
            change = rewrite(entries, fields, data.conditional, model)
            for name in change.delete:
                data.stages.pop(name[2:], None)
            data.stages.update({name[2:]: value for name, value in change.set.items()})
            gone = set(change.cond_remove)
            data.conditional = [(m, at) for m, at in data.conditional if m not in gone]
            data.conditional += [(m, at) for m, at in change.cond_add.items()]
        self._resolve()

    def _components(self) -> list[set[str]]:
        parent = {k: k for k in self.first_seen}

        def find(k: str) -> str:
            while parent[k] != k:
                k = parent[k]
            return k

        for tie in self.ties:
            keys = tie.split(TIE_SEPARATOR)
            for other in keys[1:]:
                parent[find(other)] = find(keys[0])
        groups: dict[str, set[str]] = {}
        for key in parent:
            groups.setdefault(find(key), set()).add(key)
        return list(groups.values())

    def _resolve(self) -> None:
        new: dict[str, dict[str, Any]] = {}
        for component in self._components():
            ties = {t: o for t, o in self.ties.items() if t.split(TIE_SEPARATOR)[0] in component}
            first = {k: self.first_seen[k] for k in component}
            new.update(derive_profiles(first, ties, self.anchors, self.model, self.policy))
        changes = stage_changes(self.profiles, new, self.model, self.announced)
        for cid, profile in new.items():  # as the resolver stores it
            record = announced_record(profile)
            if record or cid in self.announced:
                self.announced[cid] = record
        self.announcements.extend(changes)
        self.profiles = new

    def state(self) -> dict[frozenset[str], tuple[Any, ...]]:
        """Customers keyed by identity set: id, stage, history, journey entries."""
        result = {}
        for profile in self.profiles.values():
            ids = frozenset(profile["identities"])
            journey = frozenset(e for i in ids for e in self.journeys.get(i, ()))
            result[ids] = (profile["id"], profile["stage"], repr(profile["history"]), journey)
        return result


def make_event(kind: str, message_id: str, at_ms: int, **fields: Any) -> dict[str, Any]:
    """A normalised event as the collector writes it."""
    at = format_time_ms(at_ms)
    event = {
        "type": kind,
        "messageId": message_id,
        "timestamp": at,
        "receivedAt": at,
        "source": "test",
        "context": {"channel": fields.pop("channel", "web")},
    }
    event.update(fields)
    return event


def format_time_ms(at_ms: int) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(at_ms / 1000, UTC))
