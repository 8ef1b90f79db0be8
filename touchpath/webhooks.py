"""Stage-change webhooks, the pure part: subscriptions, matching, bodies and the retry plan.

A subscription names a URL, optionally the stages it wants (the ``stage`` an announcement is
about: entered, or its entry corrected) and/or transitions (``"consideration->decision"``,
``"*->purchase"``), and a Standard Webhooks secret. Every matching change becomes one
delivery (id ``<change_id>.<subscription id>``) with a fixed body and ``webhook-id``
(``msg_<change_id>``) across its retries, so receivers can de-duplicate. Retries follow
exponential backoff with full jitter, for a bounded time.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from touchpath.destinations import Network, blocked, ip_literal, why_blocked
from touchpath.secrets import mask_url
from touchpath.signatures import new_secret, secret_bytes

ANY = "*"
EVENT_TYPES = {
    "advance": "stage.changed",
    "correction": "stage.corrected",
    "trigger.fired": "trigger.fired",
    "trigger.cancelled": "trigger.cancelled",
}


class SubscriptionError(ValueError):
    """A subscription request that cannot be accepted (answer 400 with this reason)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where and what to deliver."""

    id: str
    url: str
    secret: str
    stages: tuple[str, ...] = ()
    transitions: tuple[tuple[str, str], ...] = ()
    created_at: str = ""
    description: str = ""
    triggers: tuple[str, ...] = ()  # trigger firings wanted (issue #21); "*": every trigger

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Subscription:
        data = orjson.loads(raw)
        data["stages"] = tuple(data.get("stages") or ())
        data["transitions"] = tuple(tuple(t) for t in data.get("transitions") or ())
        data["triggers"] = tuple(data.get("triggers") or ())
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """What the API shows (never the secret, nor credentials in the URL)."""
        return {
            "id": self.id,
            "url": mask_url(self.url),
            "stages": list(self.stages),
            "transitions": [f"{a}->{b}" for a, b in self.transitions],
            "created_at": self.created_at,
            "description": self.description,
            "triggers": list(self.triggers),
        }


def new_subscription(
    url: str,
    stages: Iterable[str],
    transitions: Iterable[str],
    known_stages: Iterable[str],
    secret: str | None = None,
    description: str = "",
    allowed: Iterable[Network] = (),
    triggers: Iterable[str] = (),
    known_triggers: Iterable[str] = (),
) -> Subscription:
    """A validated subscription (SubscriptionError naming what is wrong); ``allowed`` are the
    networks a URL may point into although they are not public."""
    _check_url(url, allowed)
    known = set(known_stages)
    wanted = tuple(dict.fromkeys(stages))
    unknown = [s for s in wanted if s not in known]
    pairs = tuple(dict.fromkeys(_transition(t, known) for t in transitions))
    if unknown:
        raise SubscriptionError(f"unknown stage(s) {unknown}; the stages are {sorted(known)}")
    wanted_triggers = tuple(dict.fromkeys(triggers))
    names = set(known_triggers) | {ANY}
    if not set(wanted_triggers) <= names:
        raise SubscriptionError(
            f"unknown trigger(s) {sorted(set(wanted_triggers) - names)}; "
            f"the triggers are {sorted(names - {ANY})} ('*' for all)"
        )
    if secret is not None:
        try:
            secret_bytes(secret)
        except ValueError as exc:
            raise SubscriptionError(f"secret: {exc}; leave it out to get one generated") from None
    return Subscription(
        id="sub_" + secrets.token_hex(8),
        url=url,
        secret=secret or new_secret(),
        stages=wanted,
        transitions=pairs,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        description=description[:200],
        triggers=wanted_triggers,
    )


def _check_url(url: str, allowed: Iterable[Network]) -> None:
    """An absolute http(s) URL without credentials, not naming a refused IP address (names
    are checked on every delivery, on the address they resolve to)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise SubscriptionError("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise SubscriptionError("url must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise SubscriptionError("url must not carry credentials (user:password@)")
    address = ip_literal(host)
    if address is not None and blocked(address, allowed):
        raise SubscriptionError(
            f"url points at a {why_blocked(address)} address ({address}); deliveries go only to "
            "public addresses unless TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS lists its network"
        )


def _transition(text: str, known: set[str]) -> tuple[str, str]:
    before, arrow, after = (part.strip() for part in text.partition("->"))
    if not arrow or not before or not after:
        raise SubscriptionError(f"transition {text!r} must look like 'from->to' ('*' for any)")
    for stage in (before, after):
        if stage != ANY and stage not in known:
            raise SubscriptionError(f"unknown stage {stage!r} in transition {text!r}")
    return before, after


def matches(subscription: Subscription, change: Mapping[str, Any]) -> bool:
    """True when ``change`` is one the subscription asked for (no filter: every stage change;
    trigger firings only when it names their trigger or ``*``)."""
    trigger = change.get("trigger")
    if trigger is not None:
        return trigger in subscription.triggers or ANY in subscription.triggers
    if not subscription.stages and not subscription.transitions:
        return not subscription.triggers
    to, before = change.get("to"), change.get("from") or ""
    if change.get("stage", to) in subscription.stages:
        return True
    return any(a in (ANY, before) and b in (ANY, to) for a, b in subscription.transitions)


def delivery_id(change: Mapping[str, Any], subscription: Subscription) -> str:
    """One delivery per change and subscription (its key in the store)."""
    return f"{change['change_id']}.{subscription.id}"


def webhook_id(change: Mapping[str, Any]) -> str:
    """The Standard Webhooks ``webhook-id``: the same for every retry of a change."""
    return f"msg_{change['change_id']}"


def delivery_body(change: Mapping[str, Any]) -> bytes:
    """The JSON a subscriber receives: ``{type, timestamp, data: <the change>}``."""
    kind = EVENT_TYPES.get(str(change.get("kind")), "stage.changed")
    moment = datetime.fromtimestamp(int(change["at_ms"]) / 1000, UTC)
    timestamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({"type": kind, "timestamp": timestamp, "data": change})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for at most ``max_age_s`` or ``max_attempts``."""

    base_s: float = 1.0
    cap_s: float = 300.0
    max_attempts: int = 10
    max_age_s: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def next_delay(self, attempts: int, age_s: float) -> float | None:
        """Seconds until the next try after ``attempts`` failures; None once exhausted."""
        if attempts >= self.max_attempts:
            return None
        delay = self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempts - 1)))
        if age_s + delay > self.max_age_s:
            return None
        return delay
