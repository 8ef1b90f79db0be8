"""The processor's pauses: the dead-letter brake's backoff, expiry, and their settings."""

from __future__ import annotations

import pytest

from processor.pauses import DEAD_LETTER_LIMIT, REDIS_FULL, DeadLetterBrake, Pauses
from touchpath.settings import ConfigError, load_settings


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def brake(limit: int = 10) -> tuple[DeadLetterBrake, Pauses, Clock]:
    clock = Clock()
    pauses = Pauses(clock)
    return DeadLetterBrake(pauses, limit, first_pause_s=5, max_pause_s=20), pauses, clock


def pause_length(pauses: Pauses, clock: Clock) -> float:
    """Seconds until the dead-letter pause ends (moves the clock to its end)."""
    start = clock.now
    while pauses.holding(DEAD_LETTER_LIMIT):
        clock.now += 0.5
    return clock.now - start


def test_up_to_the_limit_nothing_pauses() -> None:
    dead_letters, pauses, _ = brake()
    dead_letters.record(6)
    dead_letters.record(4)
    assert pauses.active() == []


def test_past_the_limit_consumption_pauses_then_resumes_by_itself() -> None:
    dead_letters, pauses, clock = brake()
    dead_letters.record(11)
    assert pauses.active() == [DEAD_LETTER_LIMIT]
    assert pause_length(pauses, clock) == 5
    assert pauses.active() == []


def test_a_flood_doubles_the_pause_up_to_the_cap_and_a_quiet_minute_resets_it() -> None:
    dead_letters, pauses, clock = brake()
    lengths = []
    for _ in range(4):
        dead_letters.record(11)
        lengths.append(pause_length(pauses, clock))
    assert lengths == [5, 10, 20, 20]
    clock.now += 61
    dead_letters.record(11)
    assert pause_length(pauses, clock) == 5


def test_each_pause_takes_a_fresh_limit_of_dead_letters() -> None:
    dead_letters, pauses, clock = brake()
    dead_letters.record(11)
    pause_length(pauses, clock)
    dead_letters.record(10)  # a trickle after the burst, within the same minute
    assert pauses.active() == []
    dead_letters.record(1)
    assert pauses.active() == [DEAD_LETTER_LIMIT]


def test_the_window_is_one_minute() -> None:
    dead_letters, pauses, clock = brake()
    dead_letters.record(10)
    clock.now += 61
    dead_letters.record(10)
    assert pauses.active() == []


def test_limit_zero_never_pauses() -> None:
    dead_letters, pauses, _ = brake(limit=0)
    dead_letters.record(10**6)
    assert pauses.active() == []


def test_a_reason_without_deadline_holds_until_released() -> None:
    pauses = Pauses(Clock())
    pauses.hold(REDIS_FULL, float("inf"), "full")
    assert pauses.active() == [REDIS_FULL]
    pauses.release(REDIS_FULL)
    assert pauses.active() == []


def test_redis_maxmemory_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().redis_maxmemory == "1gb"
    monkeypatch.setenv("TOUCHPATH_REDIS_MAXMEMORY", "512MB")
    assert load_settings().redis_maxmemory == "512MB"
    monkeypatch.setenv("TOUCHPATH_REDIS_MAXMEMORY", "lots")
    with pytest.raises(ConfigError, match="TOUCHPATH_REDIS_MAXMEMORY"):
        load_settings()
