"""One way to retry: exponential backoff, and only for errors known to be transient.

Every loop that waits out a dependency (Redis, Kafka) uses :class:`Backoff` for its delays and,
where it retries one step, :func:`retry`: an error not listed as transient is a bug and
surfaces instead of being retried forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from infra.redis_clients import slot_moved

R = TypeVar("R")


@dataclass(slots=True)
class Backoff:
    """Delays that start at ``first`` seconds and double up to ``cap``; :meth:`reset` after a
    success."""

    first: float = 0.1
    cap: float = 5.0
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.first

    def next(self) -> float:
        """The delay to wait now (the following one is twice as long, up to the cap)."""
        delay, self.current = self.current, min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.first


def retry(
    step: Callable[[], R],
    transient: tuple[type[BaseException], ...],
    stop: threading.Event,
    on_error: Callable[[BaseException], None],
    backoff: Backoff | None = None,
) -> R | None:
    """Run ``step`` until it returns, waiting with backoff after each transient error (told to
    ``on_error``); None when ``stop`` is set first. Any other error propagates."""
    delays = backoff or Backoff()
    while not stop.is_set():
        try:
            return step()
        except transient as exc:
            if slot_moved(exc):  # a pinned cluster client must be made anew: not transient
                raise
            on_error(exc)
        stop.wait(delays.next())
    return None
