"""An in-memory mirror of the journey store's semantics, for property tests of the pure core.

It folds event effects exactly as ``store/scripts/ingest.lua`` does (dedup per anchor, min
stage candidates, max traits, min first-seen, min tie order, each active day's earliest event,
purchase times) and derives customers per raw identity component with the same pure
functions the processor uses. It does not model the store's bounds (journey cap, traits per
identifier, identifiers and ties per cluster, de-duplication window, active days and purchase
times kept) nor erasure. ``tests/e2e/test_store_differential.py`` compares it with the real
scripts field by field: :meth:`ReferenceStore.anchor_fields` is ``P:a:<id>:data`` as the
script writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from store.codecs import decode_journey, encode_journey_entry, seen_member
from touchpath.anchors import AnchorData
from touchpath.announcements import announced_record, stage_changes
from touchpath.effects import effects_of
from touchpath.events import format_time
from touchpath.identity import TIE_SEPARATOR, IdentityPolicy
from touchpath.profiles import derive_profiles
from touchpath.reevaluation import rewrite
from touchpath.stages import StageModel

_MARKS = ("first", "last", "cond")  # anchor fields that are not counters


@dataclass
class ReferenceStore:
    model: StageModel
    policy: IdentityPolicy = field(default_factory=IdentityPolicy)
    seen: dict[tuple[str, bytes], int] = field(default_factory=dict)  # (anchor, seen member)
    anchors: dict[str, AnchorData] = field(default_factory=dict)
    buys: dict[str, dict[str, int]] = field(default_factory=dict)
    journeys: dict[str, dict[bytes, int]] = field(default_factory=dict)  # member → time
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # anchor → tie → order
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # anchor → order → answer
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
        seen = (effect.anchor, seen_member(effect.message_id))
        if seen in self.seen:
            return
        self.seen[seen] = effect.received_ms
        data = self.anchors.setdefault(effect.anchor, AnchorData())
        journey = self.journeys.setdefault(effect.anchor, {})  # as ZADD: one time per member
        journey[encode_journey_entry(effect.entry)] = effect.at_ms
        at = f"{effect.at_ms:015d}"  # first/last seen: as anchor_data decodes them
        if at < data.counts.get("first", "~"):
            data.counts["first"] = at
        if at > data.counts.get("last", ""):
            data.counts["last"] = at
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
            data.counts["cond"] = "1"
        for name, value in effect.traits.items():
            if value > data.traits.get(name, ""):
                data.traits[name] = value
        if effect.active:  # as ingest.lua's d:<day> fields (earliest wins)
            day = effect.at_ms // 86_400_000
            data.days[day] = min(effect.at_ms, data.days.get(day, effect.at_ms))
        if "orders" in effect.counts:  # as P:a:<anchor>:buys (messageId → time)
            data.purchases.append(effect.at_ms)
            self.buys.setdefault(effect.anchor, {})[effect.message_id] = effect.at_ms
        if not data.first_touch or effect.first_touch < data.first_touch:
            data.first_touch = effect.first_touch
        answers = self.answers.setdefault(effect.anchor, {})
        for order, answer in effect.surveys.items():  # one per event: its order key
            if order not in answers:
                answers[order] = answer
                data.surveys.append(answer)
        links = self.links.setdefault(effect.anchor, {})
        tie = effect.tie or ""  # "": the anchor alone
        if tie not in links or effect.order < links[tie]:
            links[tie] = effect.order
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
            entries = decode_journey(self.journeys.get(anchor, {}).items())
            fields = {f"s:{stage}": value for stage, value in data.stages.items()}
            fields.update({f"t:{name}": value for name, value in data.traits.items()})
            fields.update({f"c:{k}": v for k, v in data.counts.items() if k not in _MARKS})
            buys = self.buys.setdefault(anchor, {})
            days = {str(day): ms for day, ms in data.days.items()}
            change = rewrite(entries, fields, data.conditional, model, buys, days)
            for name in change.delete:
                (data.stages if name[0] == "s" else data.counts).pop(name[2:], None)
            for name, value in change.set.items():
                (data.stages if name[0] == "s" else data.counts)[name[2:]] = value
            gone = set(change.cond_remove)
            data.conditional = [(m, at) for m, at in data.conditional if m not in gone]
            data.conditional += [(m, at) for m, at in change.cond_add.items()]
            for message_id in change.buys_remove:
                buys.pop(message_id, None)
            buys.update(change.buys_add)
            data.purchases = sorted(buys.values())
            for day in change.days_remove:
                data.days.pop(int(day), None)
            data.days.update((int(day), ms) for day, ms in change.days_set.items())
        self._resolve()

    def anchor_fields(self, anchor: str, window_ms: int = 8 * 86_400_000) -> dict[str, str]:
        """``P:a:<anchor>:data`` as ``ingest.lua`` writes it: ``c:<counter>``, ``first``,
        ``last``, ``ft``, ``s:<stage>``, ``t:<trait>`` and ``nt`` (their number), ``v:<order>``
        (survey answers), ``cond`` (gated candidates exist), ``l:<tie>`` (link markers),
        ``d:<day>`` (active days) and ``nd`` (their number), and
        the de-duplication window's ``nr`` (newest receipt) and ``tr`` (oldest receipt plus
        ``window_ms``: no receipt has left the window here)."""
        data = self.anchors[anchor]
        receipts = [r for (a, _), r in self.seen.items() if a == anchor]
        marks = ("first", "last", "cond")
        fields = {f"c:{k}": v for k, v in data.counts.items() if k not in marks}
        fields.update((k, data.counts[k]) for k in marks if k in data.counts)
        fields["ft"] = data.first_touch
        fields.update((f"s:{stage}", c) for stage, c in data.stages.items())
        fields.update((f"t:{name}", value) for name, value in data.traits.items())
        if data.traits:
            fields["nt"] = str(len(data.traits))
        fields.update((f"v:{order}", a) for order, a in self.answers.get(anchor, {}).items())
        fields.update((f"l:{tie}", order) for tie, order in self.links.get(anchor, {}).items())
        fields.update(nr=str(max(receipts)), tr=str(min(receipts) + window_ms))
        fields.update((f"d:{day}", f"{ms:015d}") for day, ms in data.days.items())
        if data.days:
            fields["nd"] = str(len(data.days))
        return fields

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
            journey = frozenset(e for i in ids for e in self.journeys.get(i, {}).items())
            result[ids] = (
                profile["id"],
                profile["stage"],
                repr(profile["history"]),
                journey,
                repr((profile["cycle"], profile["cycles"], profile["last_active"])),
            )
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
