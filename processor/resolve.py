"""Step 3, resolve: one round's dead letters confirmed, its touched clusters derived again
(:class:`processor.resolver.Resolver`), and what it processed counted.

A round is durable once this step returns: only then are its offsets committed
(:mod:`processor.commit`). It runs on the resolver thread, one round at a time
(:class:`processor.pipeline.Pipeline`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from processor import metrics
from processor.apply import Pending
from processor.dead_letters import DeadLetters
from processor.resolver import Resolver

log = logging.getLogger(__name__)


@dataclass
class Resolve:
    """Confirms a round's dead letters and resolves its clusters."""

    dead_letters: DeadLetters
    resolver: Resolver

    def __call__(self, pending: Pending) -> int:
        """Confirm the dead letters of pending work, derive and store its customers; returns
        how many clusters were resolved (raises on Redis and Kafka errors)."""
        self.dead_letters.confirm(pending.letters)
        report = self.resolver.resolve(pending.clusters)
        observe(pending)  # processed = visible in the customer's stage
        metrics.MERGES.inc(report.merges)
        metrics.STALE_RESOLUTIONS.inc(report.stale)
        for reason, count in report.refused.items():
            metrics.MERGES_REFUSED.labels(reason).inc(count)
        elapsed = time.perf_counter() - pending.started
        metrics.BATCH_SECONDS.observe(elapsed)
        log.debug(
            "batch resolved",
            extra={
                "resolved": report.resolved,
                "retries": report.retries,
                "stale": report.stale,
                "seconds": round(elapsed, 3),
            },
        )
        return report.resolved


def observe(pending: Pending) -> None:
    """Count a resolved round's events: processed by channel, duplicates, event-to-stage."""
    now_ms = time.time() * 1000
    for received in pending.received_ms:
        metrics.EVENT_TO_STAGE.observe(max(0.0, now_ms - received) / 1000)
    for channel, count in pending.channels.items():
        metrics.EVENTS_PROCESSED.labels(channel).inc(count)
    metrics.EVENTS_DUPLICATE.inc(pending.duplicates)
