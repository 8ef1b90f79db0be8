"""What the two readers of Redis-stream outboxes (the processor's publisher, the webhook
dispatcher) share: when an entry left pending by a crashed reader is claimed, and the one
refusal of XGROUP CREATE that is fine."""

from __future__ import annotations

from typing import Any

import redis

#: a stream entry: its id and fields
Entry = tuple[bytes, dict[bytes, bytes]]

#: an entry pending this long with one reader (that crashed, say) is claimed by another
CLAIM_IDLE_MS = 30_000


def read_entries(answer: Any) -> list[Entry]:
    """The entries of an XREADGROUP answer (None when a blocking read timed out)."""
    return [entry for _, entries in answer or [] for entry in entries]


def claimed_entries(answer: Any) -> list[Entry]:
    """The entries an XAUTOCLAIM answer claimed, without those deleted meanwhile."""
    return [entry for entry in answer[1] if entry and entry[1]]


def exists_already(error: redis.ResponseError) -> bool:
    """Whether XGROUP CREATE failed only because the group exists (any other refusal, e.g.
    OOM while Redis is full, means it must be tried again)."""
    return "BUSYGROUP" in str(error)
