"""The journey store in Redis: key layout, the atomic per-event script, cluster reads/writes.

Layout (``P`` is the configured prefix):

* ``P:a:<identifier>:{seen,journey,data,cond,buys}`` — contributions of the events
  anchored at an identifier: de-duplication set, timeline (its members: store/codecs.py),
  counters/stage candidates/traits/active days, gated candidates and purchase times (the
  lifecycle).
* ``P:id:<identifier>`` → raw cluster id; ``P:cl:<cluster>`` — the raw identity cluster, one
  hash (``store.keys.ClusterFields``): every identifier ever tied together (``i:``), its ties
  (``t:``), a version bumped on every identity or stage change (``v``), the customers last
  derived from it (``c:``, their ids; each profile is stored once, as ``P:cust``), ties
  refused because it was full (``o:``), identifiers an admin split off (``b:``), and the
  counts its bounds compare (``ni``, ``nt``, ``no``).
* ``P:cust:<customer>`` → profile JSON (compact: ``store.codecs.encode_profile``);
  ``P:idc:<identifier>`` → customer id;
  ``P:stage:<stage>`` → customers *currently* in a stage by time entered;
  ``P:reached:<stage>`` → customers who ever reached it; ``P:funnel`` → customer id → compact
  funnel row (first touch, stage times, short traits); ``P:outbox`` → stream of stage changes
  waiting to be published to Kafka; ``P:announced`` → customer id → every stage entry
  announced for it, ``{stage: [at_ms, messageId, channel]}``: while the customer's profile is
  stored, a short form standing for its history (never deleted, so an entry is not announced
  twice; formats in ``store/codecs.py``).
* ``P:erasures`` exists once anything was erased; ``P:erased:<mark>`` → epoch ms of an
  erasure, ``mark`` being the keyed hash of the identifier (``touchpath/erasure.py``; each
  event carries its identifiers' marks): events *received* before it (replays)
  are ignored, later ones start a new customer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import orjson
import redis

from infra.erasure_key import erasure_key as infra_erasure_key
from infra.redis_clients import route
from processor.offsets import Incarnation
from store import scripts
from store.codecs import (
    StoredAnnounced,
    decode_announced,
    decode_cluster,
    decode_journey,
    decode_journey_entry,
    decode_profile,
    encode_journey_entry,
    seen_member,
)
from store.keys import Keys
from touchpath.anchors import AnchorData, anchor_data
from touchpath.effects import EventEffects
from touchpath.erasure import Marks
from touchpath.reevaluation import Rewrite, rewrite
from touchpath.settings import Settings
from touchpath.stages import StageModel


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of applying one event."""

    new: bool
    cluster: str
    needs_resolution: bool


@dataclass(frozen=True, slots=True)
class StoreBounds:
    """What the store keeps at most; each overflow is counted, never an error.

    ``journey_cap``: timeline entries per identifier; ``max_traits``: distinct traits per
    identifier; ``max_cluster_ids``: identifiers per raw cluster (a tie that would grow a full
    cluster is refused and recorded once); ``max_cluster_ties``: ties per raw cluster;
    ``dedup_window_ms``: how long behind an identifier's newest event a messageId is kept for
    de-duplication (at least the touchpoint topic's retention, so a replay never counts twice);
    ``persona_traits``: traits each funnel row keeps first (of its 20), for persona filters.
    ``max_active_days`` / ``max_purchases``: the latest active days and purchase times kept
    per identifier for the lifecycle (``touchpath/cycles.py``).
    """

    journey_cap: int = 1000
    max_traits: int = 200
    max_cluster_ids: int = 200
    max_cluster_ties: int = 1000
    dedup_window_ms: int = 8 * 24 * 3600 * 1000
    persona_traits: tuple[str, ...] = ()
    max_active_days: int = 1000
    max_purchases: int = 200

    @classmethod
    def of(cls, settings: Settings) -> StoreBounds:
        """The bounds as configured."""
        return cls(
            journey_cap=settings.journey_cap,
            max_traits=settings.max_traits,
            max_cluster_ids=settings.max_cluster_identifiers,
            max_cluster_ties=settings.max_cluster_ties,
            dedup_window_ms=settings.dedup_window_hours * 3600 * 1000,
            persona_traits=settings.persona_traits,
        )


@dataclass(frozen=True, slots=True)
class PreparedApply:
    """Apply-script calls ready to run, and the position of each event in them."""

    order: list[int]  # order[k]: index of the k-th event sent
    calls: list[list[Any]]
    #: per call, its groups of events (anchor, events) in argument order: a group sent
    #: without its JSON document is sent again with it when the script asks (see run_apply)
    groups: list[list[tuple[str, list[EventEffects]]]]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """Each event's outcome, in the order given, and what the bounds kept out."""

    applied: list[Applied]
    overflows: dict[str, int]


@dataclass(slots=True)
class ClusterState:
    """A raw cluster as read for resolution, with the contributions of its anchors."""

    cluster: str
    version: int
    first_seen: dict[str, str]
    ties: dict[str, str]
    profiles: dict[str, dict[str, Any]]
    anchors: dict[str, AnchorData]
    over: dict[str, str] = field(default_factory=dict)  # ties refused: the cluster was full
    blocked: dict[str, str] = field(default_factory=dict)  # identifiers split off → record


@dataclass(slots=True)
class ClusterWrite:
    """Commands that land only if the cluster's version is still the one read."""

    cluster: str
    version: int
    commands: list[tuple[Any, ...]] = field(default_factory=list)

    def call(self, *command: Any) -> None:
        """Queue one Redis command, e.g. ``call("SET", key, value)``."""
        self.commands.append(command)

    def remove_customer(
        self, prefix: str, cid: str, profile: dict[str, Any], triggers: Sequence[str] = ()
    ) -> None:
        """Queue the removal of a customer whose last profile is ``profile``, with its timers
        of the named ``triggers`` and its stored firings: the one removal erasures run too
        (``store/scripts/remove_customer.lua``)."""
        fields = orjson.dumps({name: profile.get(name) for name in REMOVAL_FIELDS})
        names = orjson.dumps(list(triggers))
        self.commands.append((REMOVE_CUSTOMER, prefix, self.cluster, cid, fields, names))


#: write_clusters.lua's own command: remove a customer (arguments: prefix, cluster, customer id,
#: the fields of its profile remove_customer.lua reads, as JSON, the trigger names, as JSON)
REMOVE_CUSTOMER = "remove-customer"
REMOVAL_FIELDS = ("stage", "history", "accounts")


class JourneyStore:
    """Reads and writes the journey store; every method is one or two pipelined round trips."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        bounds: StoreBounds | None = None,
        erasure_key: str = "",
        rules_version: str = "",
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.bounds = bounds or StoreBounds()
        self.rules_version = rules_version  # stored on new anchors ('rv')
        self._marks = Marks(lambda: infra_erasure_key(client, prefix, erasure_key))
        self._ingest = client.register_script(scripts.source("ingest"))
        self._read_clusters = client.register_script(scripts.source("read_clusters"))
        self._write_clusters = client.register_script(
            scripts.source("write_clusters", "remove_customer")
        )
        self._reevaluate = client.register_script(scripts.source("reevaluate"))

    def apply(self, effects: Sequence[EventEffects], chunk: int = 200) -> ApplyOutcome:
        """Apply events: :meth:`prepare_apply`, :meth:`run_apply`, :meth:`applied_of`."""
        prepared = self.prepare_apply(effects, chunk)
        return self.applied_of(prepared, self.run_apply(prepared))

    def prepare_apply(self, effects: Sequence[EventEffects], chunk: int = 200) -> PreparedApply:
        """The apply script's calls over the events grouped by anchor, about ``chunk`` events
        per call (pure Python: may run on another thread than :meth:`run_apply`)."""
        order = sorted(range(len(effects)), key=[effect.anchor for effect in effects].__getitem__)
        groups = [
            [
                (anchor, list(run))
                for anchor, run in itertools.groupby(
                    [effects[i] for i in order[start : start + chunk]], key=attrgetter("anchor")
                )
            ]
            for start in range(0, len(order), chunk)
        ]
        calls = [self._call_args(call) for call in groups]
        return PreparedApply(order, calls, groups)

    def run_apply(
        self, prepared: PreparedApply, incarnation: Incarnation | None = None
    ) -> list[list[Any]]:
        """Run prepared apply calls in one pipeline (followed by the bump of the processor's
        incarnation counter, when given); returns their raw replies. The groups the script
        answers '?' for (they need the per-event way: a replay, an erased identifier, an
        event older than the window; nothing of them was stored) are sent again with their
        JSON documents, in a second pipeline bumping the counter again, and their answers
        take the place of the '?'."""
        replies = self._run_calls(prepared.calls, incarnation)
        again = [
            [(g, prepared.groups[c][g]) for g in range(len(prepared.groups[c])) if _asks(reply, g)]
            for c, reply in enumerate(replies)
        ]
        if not any(again):
            return replies
        wanted = [c for c, groups in enumerate(again) if groups]
        calls = [self._call_args([group for _, group in again[c]], documents=True) for c in wanted]
        for c, answer in zip(wanted, self._run_calls(calls, incarnation), strict=True):
            merged = list(replies[c])
            for k, (g, _) in enumerate(again[c]):
                merged[2 * g : 2 * g + 2] = answer[2 * k : 2 * k + 2]
            replies[c] = merged
            replies.append([answer[-1]])  # what the bounds kept out in the second call
        return replies

    def _run_calls(
        self, calls: Sequence[list[Any]], incarnation: Incarnation | None
    ) -> list[list[Any]]:
        """Run apply calls in one pipeline, then bump and check the incarnation counter."""
        pipe = self.client.pipeline(transaction=False)
        for args in calls:
            self._ingest(keys=route(self.keys.prefix), args=args, client=pipe)
        if incarnation is None:
            return list(pipe.execute())
        incarnation.bump(pipe)
        replies = list(pipe.execute())
        incarnation.check(int(replies[-2]))  # the INCR; the EXPIRE follows it
        return replies[:-2]

    @staticmethod
    def applied_of(prepared: PreparedApply, replies: Sequence[list[Any]]) -> ApplyOutcome:
        """Each event's outcome, in the order the events were given, and the overflows."""
        overflows: dict[str, int] = {}
        sent: list[Applied] = []
        for reply in replies:
            for bound, count in orjson.loads(reply[-1]).items():
                if count:
                    overflows[bound] = overflows.get(bound, 0) + int(count)
            for k in range(0, len(reply) - 1, 2):
                cluster, codes = _text(reply[k]), _text(reply[k + 1])
                if len(set(codes)) == 1:  # one outcome for all (Applied is frozen)
                    sent += [_outcome(codes[0], cluster)] * len(codes)
                else:
                    sent += [_outcome(code, cluster) for code in codes]
        applied: list[Applied] = [Applied(False, "", False)] * len(prepared.order)
        for position, index in enumerate(prepared.order):
            applied[index] = sent[position]
        return ApplyOutcome(applied, overflows)

    def _call_args(
        self, groups: Sequence[tuple[str, list[EventEffects]]], documents: bool = False
    ) -> list[Any]:
        """Script arguments: the bounds, then per run of events with the same anchor its
        arguments (:func:`_group_args`): the events folded in advance for the script's fast
        path (taken when they are all new, the usual case), or, when they cannot be folded
        or ``documents`` is set, one JSON document of their values for the per-event way."""
        bounds = self.bounds
        args: list[Any] = [
            self.keys.prefix,
            bounds.journey_cap,
            bounds.max_traits,
            bounds.max_cluster_ids,
            bounds.max_cluster_ties,
            bounds.dedup_window_ms,
            self.rules_version,
            bounds.max_active_days,
            bounds.max_purchases,
        ]
        for anchor, run in groups:
            args += _group_args(anchor, run, self._marks, documents)
        return args

    def read_clusters(self, clusters: Sequence[str]) -> list[ClusterState]:
        """Versions, identifiers, ties, last profiles and anchors of clusters, in one call
        (clusters without identifiers, e.g. merged away, are skipped)."""
        if not clusters:
            return []
        raw = orjson.loads(
            self._read_clusters(keys=route(self.keys.prefix), args=[self.keys.prefix, *clusters])
        )
        return [_cluster_state(*found) for found in raw or ()]

    def write_clusters(self, writes: Sequence[ClusterWrite]) -> list[ClusterWrite]:
        """Run each cluster's commands atomically if its version is unchanged, in one call;
        returns the writes that did not land because their cluster changed meanwhile."""
        args: list[Any] = []
        for write in writes:
            args += (self.keys.cluster(write.cluster), write.version, len(write.commands))
            for command in write.commands:
                args.append(len(command))
                args.extend(command)
        if not args:
            return []
        return [
            writes[int(position) - 1]
            for position in self._write_clusters(keys=route(self.keys.prefix), args=args)
        ]

    def reevaluate(self, anchors: Sequence[str], model: StageModel) -> int:
        """Rewrite the stage candidates of these anchors under ``model`` from their timelines
        (:func:`touchpath.reevaluation.rewrite`), each atomically and only if no event landed
        on it meanwhile (then it is read again); returns how many were rewritten."""
        pending, rewritten = sorted(set(anchors)), 0
        for _ in range(REEVALUATE_ATTEMPTS):
            if not pending:
                return rewritten
            bounds = self.bounds
            args: list[Any] = [
                self.keys.prefix,
                model.version,
                bounds.max_purchases,
            ]
            read = self._read_anchors(pending)
            for anchor, (fields, cond, entries, buys, days) in zip(pending, read, strict=True):
                change = rewrite(decode_journey(entries), fields, cond, model, buys, days)
                doc = _rewrite_doc(change, days, bounds.max_active_days)
                args += (anchor, fields.get("c:events", ""), orjson.dumps(doc))
            stale = {_text(a) for a in self._reevaluate(keys=route(self.keys.prefix), args=args)}
            rewritten += len(pending) - len(stale)
            pending = sorted(stale)
        raise RuntimeError(f"{len(pending)} anchors kept changing while being re-evaluated")

    def _read_anchors(self, anchors: Sequence[str]) -> list[AnchorRead]:
        """Each anchor's hash (its active days are ``d:<day>`` fields), ``cond`` set, timeline
        and purchases, in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for anchor in anchors:
            pipe.hgetall(self.keys.anchor(anchor, "data"))
            pipe.zrange(self.keys.anchor(anchor, "cond"), 0, -1, withscores=True)
            pipe.zrange(self.keys.anchor(anchor, "journey"), 0, -1, withscores=True)
            pipe.zrange(self.keys.anchor(anchor, "buys"), 0, -1, withscores=True)
        replies = pipe.execute()
        found = []
        for k in range(0, len(replies), 4):
            fields = {_text(f): _text(v) for f, v in replies[k].items()}
            cond = [(_text(m), int(s)) for m, s in replies[k + 1]]
            buys = {_text(m): int(s) for m, s in replies[k + 3]}
            days = {str(day): ms for day, ms in anchor_data(fields).days.items()}
            found.append((fields, cond, replies[k + 2], buys, days))
        return found

    def read_announced(
        self, customer_ids: Iterable[str], profiles: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, StoredAnnounced]:
        """What was announced for each customer id (absent when nothing), ``profiles`` being
        the stored profiles of those that have one (:func:`store.codecs.decode_announced`)."""
        wanted = sorted(set(customer_ids))
        if not wanted:
            return {}
        values = self.client.hmget(self.keys.announced, wanted)
        found = {}
        for cid, raw in zip(wanted, values, strict=True):
            stored = decode_announced(raw, profiles.get(cid))
            if stored is not None:
                found[cid] = stored
        return found


LAYOUT_VERSION = 4  # 2: de-duplication sets are sorted sets scored by receipt time;
# 3: cluster snapshots map each customer id to "" (the profile is only P:cust);
# 4: an anchor's active days are d:<day> fields of its hash (no P:a:<id>:days), its
# de-duplication set holds digests of the messageIds (store.codecs.seen_member), each raw
# cluster is one hash P:cl:<cluster> (no :ids, :ties, :ver, :snap, :over, :blocked), and the
# compact formats of store/codecs.py (timeline entries, profiles, announced records, funnel
# rows, trigger firings) are written: older versions cannot read them, so they refuse it


class LayoutTooNew(RuntimeError):
    """The store was written by a newer touchpath (rolling back over a layout change)."""


def migrate_layout(client: redis.Redis, prefix: str, now_ms: int) -> int:
    """Bring a store written by an older touchpath to :data:`LAYOUT_VERSION` (idempotent;
    concurrent processors may both run it); returns how many keys were converted.

    Version 1 kept messageIds in plain sets: each becomes a sorted set whose members count as
    received ``now_ms``, so they stay in the de-duplication window for its whole length.
    Versions 1 to 3 kept each anchor's active days in a sorted set: they move into its hash;
    messageIds in its de-duplication set: each becomes its digest
    (:func:`store.codecs.seen_member`), its receipt time kept; and each raw cluster in six
    keys: they become its one hash (``convert_clusters.lua``), which lists its customers' ids
    only (versions 1 and 2 kept a copy of each profile there); and timeline entries as JSON
    objects: each is written again in the compact form, at its time."""
    keys = Keys(prefix)
    version = int(client.get(keys.layout) or 1)
    if version > LAYOUT_VERSION:
        raise LayoutTooNew(
            f"the store under {prefix!r} has layout {version}, written by a newer touchpath; "
            f"this one knows layouts up to {LAYOUT_VERSION}: run the newer version"
        )
    if version == LAYOUT_VERSION:
        return 0
    converted = 0
    if version < 2:
        seen = keys.anchor("*", "seen")
        converted += _convert(client, scripts.source("convert_seen"), seen, "set", [now_ms])
    seen = keys.anchor("*", "seen")
    converted += _convert(client, scripts.source("convert_seen_digests"), seen, "zset", [])
    days = keys.anchor("*", "days")
    converted += _convert(client, scripts.source("convert_days"), days, "zset", [])
    clusters = keys.old_cluster("*", "ids")
    converted += _convert(client, scripts.source("convert_clusters"), clusters, "hash", [])
    converted += _convert_timelines(client, keys)
    try:
        client.set(keys.layout, LAYOUT_VERSION)
    except redis.OutOfMemoryError:
        if converted:
            raise
        # nothing was converted: the marker only saves the next start a scan
    return converted


def _convert(client: redis.Redis, source: str, match: str, kind: str, args: list[Any]) -> int:
    """Run the script ``source`` over every key matching ``match`` of type ``kind``, 500 keys
    a call; the sum of its answers."""
    script = client.register_script(source)
    converted, batch = 0, []
    for key in client.scan_iter(match=match, count=1000, _type=kind):
        batch.append(key)
        if len(batch) == 500:
            converted, batch = converted + int(script(keys=batch, args=args)), []
    if batch:
        converted += int(script(keys=batch, args=args))
    return converted


def _convert_timelines(client: redis.Redis, keys: Keys) -> int:
    """Rewrite every timeline entry older versions wrote (a JSON object) in the compact form
    (:func:`store.codecs.encode_journey_entry`, the bytes the processor writes for the same
    event: a message sent again later then moves its one entry), 500 timelines a round trip;
    returns how many timelines changed."""
    script = client.register_script(scripts.source("convert_timelines"))
    converted = 0
    timelines = client.scan_iter(match=keys.anchor("*", "journey"), count=1000, _type="zset")
    while batch := list(itertools.islice(timelines, 500)):
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.zrange(name, 0, -1, withscores=True)
        for name, entries in zip(batch, pipe.execute(), strict=True):
            pairs = [
                x
                for member, score in entries
                if member[:1] in (b"{", "{")
                for x in (member, encode_journey_entry(decode_journey_entry(member, score)))
            ]
            if pairs:
                converted += int(script(keys=[name], args=pairs))
    return converted


def _asks(reply: Sequence[Any], group: int) -> bool:
    """Whether the script asks for the group's JSON document (its codes are '?')."""
    codes = reply[2 * group + 1]
    return codes[:1] in (b"?", "?")


def _event_args(effect: EventEffects, marks: Marks, member: bytes, seen: bytes) -> list[Any]:
    """One event's values for ingest.lua (times as strings: Lua numbers print 14 digits);
    ``seen``: its de-duplication member (:func:`store.codecs.seen_member`), sent as hex."""
    fields: dict[str, Any] = {
        "ids": effect.identifiers,
        "marks": marks(effect.identifiers),  # names of their erasure markers
        "tie": effect.tie or "",
        "counts": effect.counts,
        "revenue": effect.revenue,
        "stages": effect.stages,
        "cond": effect.conditional,
        "traits": effect.traits,
        "first_touch": effect.first_touch,
    }
    if effect.surveys:
        fields["surveys"] = effect.surveys
    if effect.active:
        fields["act"] = 1
    return [
        effect.message_id,
        str(effect.at_ms),
        effect.order,
        member.decode(),
        str(effect.received_ms),
        fields,
        seen.hex(),
    ]


_CODES = {
    "r": Applied(True, "", True),
    "n": Applied(True, "", False),
    "s": Applied(False, "", True),
    "x": Applied(False, "", False),
}


def _outcome(code: str, cluster: str) -> Applied:
    """An event's outcome from its status code in ingest.lua's reply."""
    if code == "x":
        return _CODES["x"]
    found = _CODES[code]
    return Applied(found.new, cluster, found.needs_resolution)


def _group_args(
    anchor: str, run: Sequence[EventEffects], marks: Marks, document: bool = False
) -> list[Any]:
    """One anchor's events for ingest.lua: the anchor, the head of the folded values, an
    empty document and the folded values (see ingest.lua's fast path for the layout); or,
    when they cannot be folded or ``document`` is set, the anchor, an empty head and the
    events' JSON document."""
    members = [encode_journey_entry(effect.entry) for effect in run]
    digests = [seen_member(effect.message_id) for effect in run]
    folded = None if document else _folded(run, members, digests)
    if folded is None:
        events = [
            _event_args(effect, marks, member, digest)
            for effect, member, digest in zip(run, members, digests, strict=True)
        ]
        return [anchor, b"", orjson.dumps(events)]
    head, values = folded
    received = [effect.received_ms for effect in run]
    marked = " ".join([mark for effect in run for mark in marks(effect.identifiers)])
    return [
        anchor,
        head,
        b"",
        marked,
        str(min(received)),
        str(max(received)),
        *values,
    ]


_DAY_MS = 86_400_000
_MAX_COUNT = 255  # each count of a folded group is one byte of its head


def _folded(
    run: Sequence[EventEffects], members: Sequence[bytes], digests: Sequence[bytes]
) -> tuple[bytes, list[Any]] | None:
    """A group's events folded as ingest.lua's ``fold`` does when they are all new (their
    timeline ``members`` and de-duplication ``digests`` given): its head and values after the
    trim bound (None when the fast path cannot take it: repeated de-duplication members, no
    ``events`` counter, or a count above one byte)."""
    if len(run) == 1:
        return _folded_one(run[0], members[0], digests[0])
    if len(run) > _MAX_COUNT or len(set(digests)) < len(run):
        return None
    adds: dict[str, int] = {}
    mins: dict[str, str] = {}
    ties: dict[str, tuple[str, tuple[str, ...]]] = {}
    last = ""
    answers: dict[str, str] = {}
    traits: dict[str, str] = {}
    seen: list[Any] = []
    cond: list[Any] = []
    entries: list[Any] = []
    days: dict[int, int] = {}
    buys: list[str] = []
    revenue = 0.0
    for effect, entry, digest in zip(run, members, digests, strict=True):
        at_ms, at = effect.at_ms, str(effect.at_ms)
        padded = f"{at_ms:015d}"
        seen += (str(effect.received_ms), digest)
        if effect.active:
            day = at_ms // _DAY_MS
            if day not in days or at_ms < days[day]:
                days[day] = at_ms
        if "orders" in effect.counts:
            buys += (at, effect.message_id)
        for name, n in effect.counts.items():
            field = "c:" + name
            adds[field] = adds.get(field, 0) + n
        _earliest(mins, "first", padded)
        _earliest(mins, "ft", effect.first_touch)
        for stage, candidate in effect.stages.items():
            _earliest(mins, "s:" + stage, candidate)
        last = max(last, padded)
        for name, value in effect.traits.items():
            _latest(traits, "t:" + name, value)
        for order_key, answer in effect.surveys.items():
            _latest(answers, "v:" + order_key, answer)
        tie = effect.tie or ""
        if tie not in ties or effect.order < ties[tie][0]:
            ties[tie] = (effect.order, effect.identifiers)
        revenue += effect.revenue
        for member, when in effect.conditional.items():
            cond += (str(when), member)
        entries += (at, entry)
    if "c:events" not in adds:
        return None
    counters = {"c:events": adds.pop("c:events"), **adds}
    links = {"l:" + tie: order for tie, (order, _) in ties.items()}
    mins.update((f"d:{day}", f"{ms:015d}") for day, ms in days.items())  # active days: last
    counts = [
        len(run),
        len(counters),
        len(mins),
        len(ties),
        len(answers),
        len(traits),
        len(cond) // 2,
        len(days),
        len(buys) // 2,
        1 if buys else 0,
        *(len(ids) for _, ids in ties.values()),
    ]
    if max(counts) > _MAX_COUNT:
        return None
    fields = ["nt", *counters, *mins, *links, "last", *answers, *traits]
    values = [
        *(str(n) for n in counters.values()),
        *mins.values(),
        *links.values(),
        last,
        *answers.values(),
        *traits.values(),
    ]
    tied: list[str] = []
    for tie, (order, ids) in ties.items():
        tied += (tie, order, *ids)
    return bytes(counts), [
        repr(revenue) if revenue != 0 else "",
        *seen,
        *fields,
        *values,
        *cond,
        *entries,
        *buys,
        *tied,
    ]


def _folded_one(
    effect: EventEffects, entry: bytes, digest: bytes
) -> tuple[bytes, list[Any]] | None:
    """:func:`_folded` of a single event (the usual group): nothing to compare."""
    counts = effect.counts
    if "events" not in counts:
        return None
    stages, surveys, traits = effect.stages, effect.surveys, effect.traits
    conditional, identifiers = effect.conditional, effect.identifiers
    ordered = "orders" in counts
    active = 1 if effect.active else 0
    head = (
        1,
        len(counts),
        2 + len(stages) + active,
        1,
        len(surveys),
        len(traits),
        len(conditional),
        active,
        1 if ordered else 0,
        1 if ordered else 0,
        len(identifiers),
    )
    if max(head) > _MAX_COUNT:
        return None
    at_ms = effect.at_ms
    at, padded = str(at_ms), f"{at_ms:015d}"
    tie = effect.tie or ""
    revenue = 0.0 + effect.revenue
    fields = ["nt", "c:events"]
    numbers = [str(counts["events"])]
    for name, n in counts.items():
        if name != "events":
            fields.append("c:" + name)
            numbers.append(str(n))
    values: list[Any] = [
        repr(revenue) if revenue != 0 else "",
        str(effect.received_ms),
        digest,
        *fields,
        "first",
        "ft",
    ]
    values += ["s:" + stage for stage in stages]
    if active:
        values.append(f"d:{at_ms // _DAY_MS}")
    values += ("l:" + tie, "last")
    values += ["v:" + key for key in surveys]
    values += ["t:" + name for name in traits]
    values += numbers
    values += (padded, effect.first_touch)
    values += stages.values()
    if active:
        values.append(padded)
    values += (effect.order, padded)
    values += surveys.values()
    values += traits.values()
    for member, when in conditional.items():
        values += (str(when), member)
    values += (at, entry)
    if ordered:
        values += (at, effect.message_id)
    values += (tie, effect.order, *identifiers)
    return bytes(head), values


def _earliest(folded: dict[str, str], field: str, value: str) -> None:
    if field not in folded or value < folded[field]:
        folded[field] = value


def _latest(folded: dict[str, str], field: str, value: str) -> None:
    if field not in folded or value > folded[field]:
        folded[field] = value


REEVALUATE_ATTEMPTS = 20
#: what re-evaluation reads of an anchor: hash, cond set, timeline, purchases, active days
AnchorRead = tuple[
    dict[str, str],
    list[tuple[str, int]],
    list[tuple[bytes, float]],  # the timeline: stored entries and their times
    dict[str, int],
    dict[str, int],
]


def _rewrite_doc(change: Rewrite, days: Mapping[str, int], max_days: int) -> dict[str, Any]:
    """A rewrite as reevaluate.lua reads it; the active days (``d:<day>`` fields of the
    anchor hash, ``days`` as read) kept to the latest ``max_days`` as ingest.lua keeps them."""
    cond_add: list[Any] = []
    for member, at_ms in sorted(change.cond_add.items()):
        cond_add += (at_ms, member)
    delete, sets = list(change.delete), dict(change.set)
    if change.days_set or change.days_remove:
        kept = {day: ms for day, ms in days.items() if day not in change.days_remove}
        kept.update(change.days_set)
        dropped = sorted(kept, key=int)[: max(0, len(kept) - max_days)]
        delete += [f"d:{day}" for day in (*change.days_remove, *dropped)]
        sets.update((f"d:{day}", f"{ms:015d}") for day, ms in change.days_set.items())
        for day in dropped:
            sets.pop(f"d:{day}", None)
        sets["nd"] = str(len(kept) - len(dropped))
    return {
        "delete": delete,
        "set": sets,
        "cond_remove": list(change.cond_remove),
        "cond_add": cond_add,
        "buys_remove": list(change.buys_remove),
        "buys_add": [x for m, at in sorted(change.buys_add.items()) for x in (at, m)],
    }


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    """A flat ``[k1, v1, k2, v2, …]`` list as a dict (``{}`` stands for an empty list)."""
    return dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}


def _cluster_state(
    cluster: str, flat: Sequence[str], profiles: Sequence[str], anchors: Sequence[Any]
) -> ClusterState:
    """A cluster as read_clusters.lua returns it: its hash's fields split by kind."""
    parts = decode_cluster(_pairs(flat))
    return ClusterState(
        cluster,
        parts.version,
        parts.identifiers,
        parts.ties,
        {cid: decode_profile(profile) for cid, profile in _pairs(profiles).items()},
        {anchor: _anchor(*found) for anchor, *found in anchors or ()},
        parts.over,
        parts.blocked,
    )


def _anchor(data: Sequence[str], cond: Sequence[str], buys: Sequence[str] = ()) -> AnchorData:
    decoded = anchor_data(_pairs(data))  # its active days are d:<day> fields
    if cond:
        decoded.conditional = [(m, int(s)) for m, s in zip(cond[::2], cond[1::2], strict=True)]
    if buys:
        decoded.purchases = [int(float(s)) for s in buys[1::2]]
    return decoded
