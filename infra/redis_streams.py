"""What the two readers of Redis-stream outboxes (the processor's publisher, the webhook
dispatcher) share: when an entry left pending by a crashed reader is claimed, and the one
refusal of XGROUP CREATE that is fine."""

from __future__ import annotations

import redis

#: an entry pending this long with one reader (that crashed, say) is claimed by another
CLAIM_IDLE_MS = 30_000


def exists_already(error: redis.ResponseError) -> bool:
    """Whether XGROUP CREATE failed only because the group exists (any other refusal, e.g.
    OOM while Redis is full, means it must be tried again)."""
    return "BUSYGROUP" in str(error)
