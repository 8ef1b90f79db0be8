"""Supervision for ``touchpath up``: restart a child that died, with backoff and a log line,
dependencies before services; give up only after repeated crashes of one child in a window.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field

from infra.embedded import Child, EmbeddedError, log_tail

BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 15.0


def say(line: str) -> None:
    """One line of ``touchpath up``'s own, on stderr."""
    print(f"touchpath up: {line}", file=sys.stderr, flush=True)


@dataclass
class Crashes:
    """One child's recent crashes and when it may be started again."""

    times: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


class GiveUp(Exception):
    """A child crashed too often within the window; the message names it and its last logs."""


class Supervisor:
    """Watches ``children`` (in start order; ``dependencies`` named) and restarts the dead.

    ``restart(child)`` starts a replacement (blocking until it listens) or raises
    :class:`EmbeddedError`. A child is restarted after ``0.5 s * 2^(crashes in the window - 1)``
    (at most 15 s); its ``max_crashes``-th crash within ``window_s`` seconds gives up. Services
    wait while a dependency is down.
    """

    def __init__(
        self,
        children: list[Child],
        restart: Callable[[Child], Child],
        dependencies: Iterable[str],
        max_crashes: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = children
        self.restart = restart
        self.dependencies = frozenset(dependencies)
        self.max_crashes = max_crashes
        self.window_s = window_s
        self.clock = clock
        self.crashes: dict[str, Crashes] = {}

    def check(self) -> None:
        """One round: note new deaths, restart those due; raise :class:`GiveUp` when done."""
        for index, child in enumerate(self.children):
            if child.alive():
                continue
            crashes = self.crashes.setdefault(child.name, Crashes())
            if crashes.restart_at is None:
                self._note_crash(child, crashes, f"exited with {child.process.returncode}")
            if self.clock() >= (crashes.restart_at or 0):
                self._restart(index, child, crashes)
            if child.name in self.dependencies and not self.children[index].alive():
                return  # dependencies before services

    def _note_crash(self, child: Child, crashes: Crashes, what: str) -> None:
        now = self.clock()
        crashes.times.append(now)
        while crashes.times and crashes.times[0] < now - self.window_s:
            crashes.times.popleft()
        count = len(crashes.times)
        if count >= self.max_crashes:
            raise GiveUp(
                f"{child.name} {what}; it crashed {count} times within {self.window_s:g} s, "
                f"giving up{log_tail(child.log_path)}"
            )
        delay = min(BACKOFF_FIRST_S * 2 ** (count - 1), BACKOFF_CAP_S)
        crashes.restart_at = now + delay
        say(
            f"{child.name} {what} (crash {count} of {self.max_crashes} allowed within "
            f"{self.window_s:g} s); restarting in {delay:g} s"
        )

    def _restart(self, index: int, child: Child, crashes: Crashes) -> None:
        try:
            replacement = self.restart(child)
        except EmbeddedError:
            crashes.restart_at = None
            self._note_crash(child, crashes, "died while restarting")
            return
        self.children[index] = replacement
        crashes.restart_at = None
        say(f"{child.name} restarted (pid {replacement.process.pid})")


def wait_ready(
    children: Iterable[Child], checks: dict[str, Callable[[Child], bool]], timeout_s: float
) -> None:
    """Block until ``checks[name](child)`` holds for every checked child; raise on a death."""
    pending = [c for c in children if c.name in checks]
    deadline = time.monotonic() + timeout_s
    while pending:
        for child in pending:
            if not child.alive():
                raise EmbeddedError(
                    f"{child.name} exited before it was ready{log_tail(child.log_path)}"
                )
        pending = [c for c in pending if not checks[c.name](c)]
        if pending and time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            raise EmbeddedError(f"not ready within {timeout_s:g} s: {names}")
        if pending:
            time.sleep(0.2)


def answers_200(child: Child, path: str) -> bool:
    """True when the child answers ``GET path`` on its port with 200."""
    url = f"http://127.0.0.1:{child.port}{path}"
    with suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
    return False


def processor_ready(child: Child) -> bool:
    """/readyz answers 200 and the processor holds partitions of its consumer group."""
    if not answers_200(child, "/readyz"):
        return False
    url = f"http://127.0.0.1:{child.port}/metrics"
    with suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("touchpath_processor_partitions_assigned "):
                return float(line.split()[1]) > 0
    return False
