"""Redis key names of the journey store, shared by the processor (writer) and the API (reader).

See ``processor/store.py`` for what each key holds.
"""

from __future__ import annotations

from dataclasses import dataclass


class ClusterFields:
    """Fields of a raw cluster's hash ``P:cl:<cluster>`` (the Lua scripts spell them alike).

    ``i:<identifier>`` → the order it was first seen at; ``t:<tie>`` → the earliest order of a
    tie; ``v`` → the version, bumped on every identity or stage change; ``c:<customer id>`` →
    "" (the customers last derived from it; each profile is ``P:cust``); ``o:<tie>`` → order of
    a tie refused because the cluster was full (at most 20); ``b:<identifier>`` → record of an
    identifier an admin split off; ``ni`` / ``nt`` / ``no``: how many ``i:`` / ``t:`` / ``o:``
    fields it has (absent: none), which the bounds compare.
    """

    IDENTIFIER = "i:"
    TIE = "t:"
    VERSION = "v"
    CUSTOMER = "c:"
    OVER = "o:"
    BLOCKED = "b:"
    IDENTIFIERS = "ni"
    TIES = "nt"
    REFUSED = "no"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    def anchor(self, identifier: str, part: str) -> str:
        return f"{self.prefix}:a:{identifier}:{part}"

    def identity(self, identifier: str) -> str:
        return f"{self.prefix}:id:{identifier}"

    def cluster(self, cluster: str) -> str:
        """Hash: one raw identity cluster, its parts as field prefixes (:class:`ClusterFields`)."""
        return f"{self.prefix}:cl:{cluster}"

    def cluster_id(self, key: str) -> str:
        """The cluster id in a :meth:`cluster` key name (its inverse)."""
        return key.removeprefix(self.cluster(""))

    def old_cluster(self, cluster: str, part: str) -> str:
        """A raw cluster's part as layouts before 4 kept it: a key of its own (``ids``, ``ties``,
        ``ver``, ``snap``, ``over``, ``blocked``); read only by the layout migration."""
        return f"{self.prefix}:cl:{cluster}:{part}"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}:cust:{customer_id}"

    def customer_of(self, identifier: str) -> str:
        return f"{self.prefix}:idc:{identifier}"

    def former(self, customer_id: str) -> str:
        """A customer id that no longer exists → the id of the customer it became."""
        return f"{self.prefix}:former:{customer_id}"

    def replay(self, digest: str) -> str:
        """A signed callback's one-time value, by its digest (collector/replay.py)."""
        return f"{self.prefix}:replay:{digest}"

    def offsets(self, topic: str) -> str:
        """Hash: partition → the next offset to read, durable with the state (processor)."""
        return f"{self.prefix}:offsets:{topic}"

    def incarnation(self, instance: str) -> str:
        """A processor instance's counter of applied parts (see processor/offsets.py)."""
        return f"{self.prefix}:incarnation:{instance}"

    @property
    def layout(self) -> str:
        """The version of the store's layout (absent: version 1)."""
        return f"{self.prefix}:layout"

    @property
    def erasures(self) -> str:
        return f"{self.prefix}:erasures"

    def erased(self, mark: str) -> str:
        """Erasure marker: ``mark`` is the keyed hash of the identifier (touchpath/erasure.py)."""
        return f"{self.prefix}:erased:{mark}"

    @property
    def erasure_key(self) -> str:
        """The generated erasure key, when ``TOUCHPATH_ERASURE_KEY`` is not set."""
        return f"{self.prefix}:erasure-key"

    @property
    def rederive(self) -> str:
        """Set of clusters an erasure changed, whose profiles are derived again."""
        return f"{self.prefix}:rederive"

    @property
    def rules(self) -> str:
        """Hash: the rules version in force and the re-evaluation's progress."""
        return f"{self.prefix}:rules"

    @property
    def rules_lease(self) -> str:
        """Which processor runs the re-evaluation (expires unless renewed)."""
        return f"{self.prefix}:rules:lease"

    def stage(self, stage: str) -> str:
        return f"{self.prefix}:stage:{stage}"

    def reached(self, stage: str) -> str:
        return f"{self.prefix}:reached:{stage}"

    @property
    def live_changes(self) -> str:
        """Stream (capped, ~10,000 entries) of each stage change as it is committed; the
        SSE endpoint reads it and resumes from its entry ids."""
        return f"{self.prefix}:live:stage-changes"

    @property
    def announced(self) -> str:
        return f"{self.prefix}:announced"

    @property
    def funnel(self) -> str:
        return f"{self.prefix}:funnel"

    @property
    def surveys(self) -> str:
        """Hash: customer id → its survey answers ``[[kind, score, at_ms, stage], …]``."""
        return f"{self.prefix}:surveys"

    @property
    def webhook_outbox(self) -> str:
        """Stream of stage changes for webhook fan-out (written with the profile)."""
        return f"{self.prefix}:wh:outbox"

    def webhooks(self, part: str) -> str:
        """Webhook state: ``subs`` (hash), ``jobs`` (hash), ``due`` (zset), ``dead`` (hash)."""
        return f"{self.prefix}:wh:{part}"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}:outbox"

    def account_members(self, group_id: str) -> str:
        """Set of the customer ids whose profile has the account (``group`` calls' groupId)."""
        return f"{self.prefix}:acct:{group_id}:members"

    @property
    def accounts(self) -> str:
        """Sorted set (all scores 0, read in lexicographic order) of every groupId seen; an
        account whose members are all gone stays listed with no members."""
        return f"{self.prefix}:accounts"

    def trigger(self, part: str) -> str:
        """Trigger timers (touchpath/triggers.py): ``due`` (sorted set: ``<customer id><US>
        <trigger>`` by the event time to evaluate it at), ``outbox`` (stream of firings for
        Kafka)."""
        return f"{self.prefix}:trg:{part}"

    def trigger_counts(self, day: str) -> str:
        """Hash: ``fired<US><trigger>`` / ``cancelled<US><trigger>`` → firings (cancellations)
        due on the UTC ``day`` (``YYYY-MM-DD``, event time); expires 400 days after the day."""
        return f"{self.prefix}:trg:n:{day}"

    def trigger_state(self, customer_id: str) -> str:
        """Hash: ``<trigger><US><firing id>`` → the firing (``store.codecs.encode_firing``) of
        a customer's fired, uncancelled occurrences (at most 20 per trigger)."""
        return f"{self.prefix}:trg:s:{customer_id}"
