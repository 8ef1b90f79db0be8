"""One-time webhook tokens: a token seen within the signature tolerance is a replay."""

from __future__ import annotations

import time
from collections import OrderedDict


class ReplayGuard:
    """Remembers tokens for ``ttl_s`` (older ones fail the timestamp check anyway), bounded.

    Per process: with several collector workers a replay reaching another worker passes this
    check, and is then dropped by the processor's de-duplication (same messageId).
    """

    def __init__(self, ttl_s: float, max_tokens: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, token: str, now: float | None = None) -> bool:
        """True the first time a token is offered (and remember it); False for a replay."""
        now = time.monotonic() if now is None else now
        while self._seen and (
            next(iter(self._seen.values())) < now or len(self._seen) >= self.max_tokens
        ):
            self._seen.popitem(last=False)
        if token in self._seen:
            return False
        self._seen[token] = now + self.ttl_s
        return True
