"""Backpressure policy: while the dead-letter limit holds (:mod:`processor.pauses`), no records
are fetched; the group membership, rounds in flight and commits go on."""

from __future__ import annotations

from infra.streams import Consumer
from processor.pauses import DEAD_LETTER_LIMIT, Pauses


def hold_back(consumer: Consumer, pauses: Pauses) -> bool:
    """Pause every assigned partition while the dead-letter limit holds, resume after; True
    while paused."""
    if pauses.holding(DEAD_LETTER_LIMIT):
        consumer.pause(*consumer.assignment())  # again: a rebalance adds some
        return True
    if consumer.paused():
        consumer.resume(*consumer.paused())
    return False
