"""Trigger timers in Redis: scheduling them with the profiles, claiming and settling them.

``P:trg:due`` holds one member per customer and armed trigger (``<customer id><US><trigger>``)
scored by the *event time* at which to evaluate it; the firing loop claims members whose
score is at most ``now - allowed lateness`` (:mod:`processor.firing`). The resolver calls
:func:`schedule` with each cluster's old and new profiles, so a timer is written in the same
compare-and-swap script as the profile it follows; its score is a pure function of the
profiles (:func:`touchpath.triggers.wake_ms`), lowered only (``ZADD LT``). A customer merged
away or erased loses its timers and firings in ``store/scripts/remove_customer.lua``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from store import scripts
from store.codecs import (
    StoredFiring,
    decode_firing,
    decode_journey_entry,
    decode_profile,
    decode_timer_member,
    firing_field,
    timer_member,
)
from store.keys import Keys
from touchpath.triggers import TriggerModel, wake_ms

#: Timeline entries read per identifier to find quiet gaps (the timeline's own bound applies).
TIMES_PER_TIMELINE = 2000


def schedule(
    call: Callable[..., None],
    keys: Keys,
    model: TriggerModel,
    old: Mapping[str, dict[str, Any]],
    new: Mapping[str, dict[str, Any]],
) -> None:
    """Queue the timer writes that follow a cluster's profile changes (``call`` queues one
    Redis command in the resolver's compare-and-swap write)."""
    if not model.triggers:
        return
    due = keys.trigger("due")
    for cid, profile in new.items():
        before = old.get(cid)
        if before == profile:
            continue
        for name, at_ms in sorted(wake_ms(model, before, profile).items()):
            call("ZADD", due, "LT", at_ms, timer_member(cid, name))


@dataclass(slots=True)
class Claimed:
    """A claimed timer and what the loop read for it."""

    customer_id: str
    trigger: str
    profile: dict[str, Any] | None
    fired: dict[str, StoredFiring]  # firing id → the stored firing
    times: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True)
class Settled:
    """What to store for one claimed timer."""

    claimed: Claimed
    next_ms: int | None
    #: (kind, field, value, payload, count key, count field, count expiry s)
    decisions: list[tuple[str, str, bytes, bytes, str, str, int]] = field(default_factory=list)


class TriggerStore:
    """The timers' Redis side: claim due ones, read their customers, store decisions."""

    def __init__(self, client: redis.Redis, keys: Keys, live_kept: int, webhook_kept: int):
        self.client = client
        self.keys = keys
        self.due = keys.trigger("due")
        self.live_kept = live_kept
        self.webhook_kept = webhook_kept
        self._claim = client.register_script(scripts.source("trigger_claim"))
        self._commit = client.register_script(scripts.source("trigger_commit"))
        self._times = client.register_script(scripts.source("trigger_times"))

    def claim(self, cutoff_ms: int, lease_ms: int, count: int) -> tuple[str, list[str]]:
        """Members due at ``cutoff_ms`` (event time), leased; and the lease score."""
        lease, members = cast(list[Any], self._claim([self.due], [cutoff_ms, lease_ms, count]))
        return _text(lease), [_text(m) for m in members]

    def read(self, members: Sequence[str], model: TriggerModel) -> list[Claimed]:
        """The profile and stored firings of each claimed timer's customer (one round trip),
        and for ``any_event`` triggers the event times since the arming (a second one)."""
        pairs = [decode_timer_member(m) for m in members]
        pipe = self.client.pipeline(transaction=False)
        for cid, _ in pairs:
            pipe.get(self.keys.customer(cid))
            pipe.hgetall(self.keys.trigger_state(cid))
        answers = pipe.execute()
        claimed = []
        for k, (cid, name) in enumerate(pairs):
            raw, state = answers[2 * k], answers[2 * k + 1]
            prefix = firing_field(name, "")
            fired = {
                _text(f)[len(prefix) :]: firing
                for f, v in state.items()
                if _text(f).startswith(prefix) and (firing := decode_firing(v)) is not None
            }
            claimed.append(Claimed(cid, name, decode_profile(raw) if raw else None, fired))
        self._read_times(claimed, model)
        return claimed

    def _read_times(self, claimed: Iterable[Claimed], model: TriggerModel) -> None:
        wanted = []
        for item in claimed:
            trigger = model.get(item.trigger)
            if trigger is None or not trigger.unless_any_event or item.profile is None:
                continue
            entry = item.profile.get("history", {}).get(trigger.entered or "")
            if entry is not None:
                wanted.append((item, entry[0]))
        if not wanted:
            return
        pipe = self.client.pipeline(transaction=False)
        for item, since in wanted:
            assert item.profile is not None
            timelines = [self.keys.anchor(i, "journey") for i in item.profile["identities"]]
            self._times(timelines, [since, TIMES_PER_TIMELINE], client=pipe)
        for (item, _), flat in zip(wanted, pipe.execute(), strict=True):
            item.times = [
                (int(float(flat[j])), decode_journey_entry(flat[j + 1], float(flat[j]))["id"])
                for j in range(0, len(flat), 2)
            ]

    def commit(self, lease: str, settled: Sequence[Settled]) -> int:
        """Store the decisions of timers still holding ``lease``; returns messages published."""
        args: list[Any] = [self.live_kept, self.webhook_kept]
        for item in settled:
            c = item.claimed
            args += [
                timer_member(c.customer_id, c.trigger),
                lease,
                self.keys.trigger_state(c.customer_id),
                "" if item.next_ms is None else item.next_ms,
                len(item.decisions),
            ]
            for decision in item.decisions:
                args += list(decision)
        keys = [
            self.due,
            self.keys.trigger("outbox"),
            self.keys.webhook_outbox,
            self.keys.live_changes,
            self.keys.webhooks("subs"),
        ]
        return int(cast(int, self._commit(keys, args)))

    def next_due(self) -> int | None:
        """The earliest timer's score (event time), if any."""
        first = cast(list[Any], self.client.zrange(self.due, 0, 0, withscores=True))
        return int(first[0][1]) if first else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
