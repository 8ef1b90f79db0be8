"""Step 2, apply: a polled batch's parts applied to Redis, their dead letters sent.

Each part's arguments are built on the polling thread and the part is applied (one Lua script
per chunk, :mod:`processor.store`) on the applier thread while the next part is decoded, so
Redis and Python work at once. A part comes out as :class:`Pending` once its effects are
durable, with the clusters it leaves to resolve; its dead letters are sent without waiting
and confirmed by the round that resolves it (:mod:`processor.resolve`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from infra.streams import Batch
from processor import metrics
from processor.dead_letters import DeadLetters, SentLetter
from processor.decode import Offsets, Part, parts
from processor.offsets import Incarnation
from processor.store import Applied, JourneyStore, PreparedApply
from touchpath.effects import EventEffects
from touchpath.events import metric_channel
from touchpath.identity import IdentityPolicy
from touchpath.stages import StageModel

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """Batches applied to Redis whose touched clusters are still to be resolved."""

    started: float
    offsets: Offsets  # next offset to consume per partition
    clusters: set[str]
    events: int = 0
    channels: Counter[str] = field(default_factory=Counter)  # new events by channel
    received_ms: list[int] = field(default_factory=list)  # collector receipt of new events
    duplicates: int = 0
    letters: list[SentLetter] = field(default_factory=list)  # to confirm before committing
    sequence: int = 0  # the incarnation counter after its last part (processor/offsets.py)

    def absorb(self, later: Pending) -> None:
        """Fold a later pending part into this one."""
        self.offsets.update(later.offsets)
        self.clusters |= later.clusters
        self.events += later.events
        self.channels.update(later.channels)
        self.received_ms += later.received_ms
        self.duplicates += later.duplicates
        self.letters += later.letters
        self.sequence = max(self.sequence, later.sequence)


class Applier:
    """Decodes and applies polled batches part by part (raises on Redis/Kafka errors)."""

    def __init__(
        self,
        store: JourneyStore,
        model: StageModel,
        policy: IdentityPolicy,
        dead_letters: DeadLetters,
        incarnation: Incarnation,
    ) -> None:
        self.store, self.model, self.policy = store, model, policy
        self.dead_letters, self.incarnation = dead_letters, incarnation
        # applies run here, in order, while the polling thread decodes the next part
        self._applier = ThreadPoolExecutor(1, thread_name_prefix="applier")

    def __call__(self, batch: Batch) -> Iterator[Pending]:
        """Decode and apply a polled batch a part at a time, dead-letter what cannot be
        processed, and yield each part once it is durable, with the clusters it leaves to
        resolve. When resolution starts is :class:`processor.pipeline.Pipeline`'s decision."""
        previous: tuple[float, Part, PreparedApply, Future[list[Any]]] | None = None
        for part in parts(batch, self.model, self.policy):
            prepared = self.store.prepare_apply(part.decoded.effects)
            applying = self._applier.submit(self.store.run_apply, prepared, self.incarnation)
            if previous is not None:
                yield self._applied(*previous)
            previous = (time.perf_counter(), part, prepared, applying)
        if previous is not None:
            yield self._applied(*previous)

    def _applied(
        self, started: float, part: Part, prepared: PreparedApply, applying: Future[list[Any]]
    ) -> Pending:
        """A part as pending once its apply is done, its bad input sent to the dead-letter
        topic (confirmed by the round that resolves it)."""
        outcome = self.store.applied_of(prepared, applying.result())
        applied = outcome.applied
        for bound, count in outcome.overflows.items():
            metrics.BOUND_OVERFLOWS.labels(bound).inc(count)
        pending = Pending(started, part.offsets, set(), sequence=self.incarnation.applied)
        pending.letters = self.dead_letters.send(part.decoded.dead)
        account(pending, part.decoded.effects, applied)
        log.debug(
            "part applied",
            extra={"events": pending.events, "seconds": round(time.perf_counter() - started, 3)},
        )
        return pending

    def close(self) -> None:
        """Stop the applier thread."""
        self._applier.shutdown()


def account(pending: Pending, effects: Sequence[EventEffects], applied: Sequence[Applied]) -> None:
    """Add a part's outcome to the pending work: clusters to resolve and new-event counts."""
    pending.events += len(effects)
    pending.clusters.update(a.cluster for a in applied if a.needs_resolution)
    for effect, result in zip(effects, applied, strict=True):
        if result.new:
            pending.channels[metric_channel(effect.channel)] += 1
            pending.received_ms.append(effect.received_ms)
        else:
            pending.duplicates += 1
