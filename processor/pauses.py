"""Why the processor holds back: the reasons in effect, as metrics and for ``/readyz``.

Two reasons exist. ``dead_letter_limit``: more dead letters in a minute than the configured
limit (a bad deploy, or a flood of unusable input) pause *consumption* for a backoff that
doubles while the flood goes on (:class:`DeadLetterBrake`); every record is still
dead-lettered and its partition moves on, so nothing is skipped or retried forever.
``redis_full``: Redis refuses writes (``maxmemory`` reached with ``noeviction``); the batch in
hand is retried with backoff, unchanged and uncommitted, until Redis has room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from processor import metrics

log = logging.getLogger(__name__)
DEAD_LETTER_LIMIT = "dead_letter_limit"
REDIS_FULL = "redis_full"
REASONS = (DEAD_LETTER_LIMIT, REDIS_FULL)
WINDOW_S = 60.0  # the dead-letter limit is per minute


class Pauses:
    """The reasons in effect, each until a deadline or until released (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()
        for reason in REASONS:  # exported from the start, at 0
            metrics.PAUSED.labels(reason).set(0)
            metrics.PAUSES.labels(reason)

    def hold(self, reason: str, seconds: float, detail: str) -> None:
        """Hold back for ``reason`` for ``seconds`` (counted once per pause)."""
        with self._lock:
            started = reason not in self._until
            self._until[reason] = self.clock() + seconds
        if started:
            metrics.PAUSED.labels(reason).set(1)
            metrics.PAUSES.labels(reason).inc()
            log.warning("processor paused", extra={"reason": reason, "detail": detail})

    def release(self, reason: str) -> None:
        """The reason no longer holds."""
        with self._lock:
            ended = self._until.pop(reason, None) is not None
        if ended:
            metrics.PAUSED.labels(reason).set(0)
            log.warning("processor resumed", extra={"reason": reason})

    def active(self) -> list[str]:
        """The reasons in effect now (expired ones are released)."""
        now = self.clock()
        with self._lock:
            expired = [r for r, until in self._until.items() if until <= now]
        for reason in expired:
            self.release(reason)
        with self._lock:
            return sorted(self._until)

    def holding(self, reason: str) -> bool:
        """Whether ``reason`` is in effect now."""
        return reason in self.active()


@dataclass
class DeadLetterBrake:
    """Pauses consumption when more than ``limit`` dead letters were sent in the last minute.

    The count starts again at each pause, so each pause takes a fresh ``limit`` of dead
    letters (a trickle after a burst does not extend it). The first pause lasts
    ``first_pause_s``; each pause that starts within a minute of the previous one's end lasts
    twice as long, up to ``max_pause_s``. ``limit`` 0 never pauses.
    """

    pauses: Pauses
    limit: int
    first_pause_s: float
    max_pause_s: float
    _sent: deque[tuple[float, int]] = field(default_factory=deque)  # (time, count)
    _in_window: int = 0
    _next_pause_s: float = 0.0
    _last_end: float = float("-inf")

    def record(self, count: int) -> None:
        """Count ``count`` dead letters just sent; pause if the minute's total passes the limit."""
        now = self.pauses.clock()
        self._sent.append((now, count))
        self._in_window += count
        while self._sent and self._sent[0][0] < now - WINDOW_S:
            self._in_window -= self._sent.popleft()[1]
        if not self.limit or self._in_window <= self.limit:
            return
        if now - self._last_end > WINDOW_S:
            self._next_pause_s = self.first_pause_s
        seconds = self._next_pause_s
        self._next_pause_s = min(seconds * 2, self.max_pause_s)
        self._last_end = now + seconds
        self.pauses.hold(
            DEAD_LETTER_LIMIT,
            seconds,
            f"{self._in_window} dead letters in the last minute (limit {self.limit}): "
            f"consumption paused for {seconds:g}s",
        )
        self._sent.clear()
        self._in_window = 0
