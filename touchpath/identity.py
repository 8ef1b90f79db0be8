"""Identity resolution with merge protection, as a pure function of the ties seen.

A *tie* is the set of identifiers one event carries (``identify`` ties anonymousId to userId,
``alias`` ties previousId to userId, any event with two identifiers ties them). Ties are
applied in canonical order — event time, then messageId — and a merge that would break a
per-kind limit (default: one ``user_id`` per customer) is refused and reported. Because the
order is canonical, the result depends only on the *set* of ties, never on arrival order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from touchpath.identifiers import (
    DEFAULT_PRIORITY,
    Identifier,
    kind_of,
    priority_rank,
    sort_by_priority,
)

TIE_SEPARATOR = "\x1f"
USER_ID_PREFIX = "user_id:"


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """Per-kind limits (``ext:<type>`` or ``ext:`` for all external ids; 0 = none) and priority."""

    limits: Mapping[str, int] = field(
        default_factory=lambda: {"user_id": 1, "email": 5, "phone": 5, "anonymous_id": 50}
    )
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    phone_region: str = ""  # default region of phone numbers without a country code

    @classmethod
    def of(cls, settings: Any) -> IdentityPolicy:
        """The policy a :class:`touchpath.settings.Settings` configures."""
        return cls(settings.identity_limits, settings.identity_priority, settings.phone_region)

    def limit_of(self, kind: str) -> int:
        """The limit for a kind; external ids fall back to the ``ext:`` entry."""
        if kind in self.limits:
            return self.limits[kind]
        return self.limits.get("ext:", 0) if kind.startswith("ext:") else 0


@dataclass(frozen=True, slots=True)
class RefusedTie:
    """A tie that was not made, and why."""

    order: str
    identifiers: tuple[str, str]
    reason: str
    kind: str = ""  # the identifier kind whose limit refused the tie


@dataclass(frozen=True, slots=True)
class Resolution:
    """Customers (as sets of identifier keys) and the ties refused on the way."""

    customers: tuple[frozenset[str], ...]
    refused: tuple[RefusedTie, ...]


def tie_key(identifiers: Iterable[Identifier], policy: IdentityPolicy | None = None) -> str:
    """The stored form of a tie: identifier keys, strongest first."""
    priority = policy.priority if policy else DEFAULT_PRIORITY
    return TIE_SEPARATOR.join(i.key() for i in sort_by_priority(identifiers, priority))


def order_key(at_ms: int, message_id: str, tiebreak: str = "", browser: bool = False) -> str:
    """Canonical order of events: a server key's before a browser key's (its ties are made
    first), then event time, then ``tiebreak`` (:func:`touchpath.effects.tiebreak`: the
    call type and a digest of the content, so same-millisecond events do not depend on their
    random messageIds), then the messageId (it only separates events of equal content)."""
    return f"{1 if browser else 0}{max(at_ms, 0):015d}{tiebreak}\x1f{message_id}"


class _Components:
    """Union-find over identifier keys, tracking how many of each kind a component holds."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.parent: dict[str, str] = {}
        self.kinds: dict[str, Counter[str]] = {}
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        if key not in self.parent:
            self.parent[key] = key
            self.kinds[key] = Counter({kind_of(key): 1})

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str, kinds: Counter[str]) -> None:
        keep, drop = sorted((a, b))
        self.parent[drop] = keep
        self.kinds.pop(drop)
        self.kinds[keep] = kinds


def resolve(
    identifiers: Iterable[str], ties: Mapping[str, str], policy: IdentityPolicy
) -> Resolution:
    """Customers from identifier keys and ties (tie key → order key), deterministic."""
    keys = set(identifiers)
    for tie in ties:
        keys.update(tie.split(TIE_SEPARATOR))
    if _within_limits(keys, policy):  # no tie can be refused: plain connected components
        return Resolution(_connected(keys, ties), ())
    return resolve_with_limits(keys, ties, policy)


def _within_limits(keys: Iterable[str], policy: IdentityPolicy) -> bool:
    counts = Counter([kind_of(key) for key in keys])
    for kind, n in counts.items():
        limit = policy.limit_of(kind)
        if limit and n > limit:
            return False
    return True


def _connected(keys: set[str], ties: Iterable[str]) -> tuple[frozenset[str], ...]:
    parent = {key: key for key in keys}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for tie in ties:
        members = tie.split(TIE_SEPARATOR)
        head = find(members[0])
        for other in members[1:]:
            root = find(other)
            if root != head:
                head, drop = min(head, root), max(head, root)
                parent[drop] = head
    groups: dict[str, set[str]] = {}
    for key in keys:
        groups.setdefault(find(key), set()).add(key)
    return tuple(sorted((frozenset(g) for g in groups.values()), key=min))


def resolve_with_limits(
    identifiers: Iterable[str], ties: Mapping[str, str], policy: IdentityPolicy
) -> Resolution:
    """The general resolution: ties in order, each refused if it would break a limit."""
    components = _Components(identifiers)
    refused: list[RefusedTie] = []
    for tie, order in sorted(ties.items(), key=lambda item: (item[1], item[0])):
        members = tie.split(TIE_SEPARATOR)
        for key in members:
            components.add(key)
        head = members[0]
        for other in members[1:]:
            # an alias's tie holds two user ids (the new one leads): joining them is a rename
            rename = head.startswith(USER_ID_PREFIX) and other.startswith(USER_ID_PREFIX)
            refusal = _merge(components, head, other, policy, rename)
            if refusal:
                refused.append(RefusedTie(order, (head, other), *refusal))
    groups: dict[str, set[str]] = {}
    for key in components.parent:
        groups.setdefault(components.find(key), set()).add(key)
    customers = tuple(sorted((frozenset(g) for g in groups.values()), key=lambda g: min(g)))
    return Resolution(customers, tuple(refused))


def _merge(
    components: _Components, a: str, b: str, policy: IdentityPolicy, rename: bool = False
) -> tuple[str, str] | None:
    """Union the components of ``a`` and ``b``, or (reason, kind) when a limit forbids it.

    A *rename* (an alias from a former userId to a new one: the only tie holding two user
    ids) joins user ids that name one person, so they take one user-id slot."""
    root_a, root_b = components.find(a), components.find(b)
    if root_a == root_b:
        return None
    kinds_a, kinds_b = components.kinds[root_a], components.kinds[root_b]
    combined = kinds_a + kinds_b
    if rename:
        combined["user_id"] = max(kinds_a["user_id"], kinds_b["user_id"])
    for kind, count in combined.items():
        limit = policy.limit_of(kind)
        if limit and count > limit:
            return f"would give {count} {kind} identifiers (limit {limit})", kind
    components.union(root_a, root_b, combined)
    return None


def customer_id(
    identifiers: Iterable[str],
    first_seen: Mapping[str, str],
    priority: tuple[str, ...] = DEFAULT_PRIORITY,
) -> str:
    """A customer's id, derived from its *founder*: the strongest identifier by priority (a
    user id before an email before an anonymous id), the earliest seen among equals. So a late
    event, however old, never changes the id of a customer that has a user id."""
    founder = min(
        identifiers,
        key=lambda key: (priority_rank(kind_of(key), priority), first_seen.get(key, "~"), key),
    )
    return "cus_" + hashlib.blake2b(founder.encode(), digest_size=10).hexdigest()
