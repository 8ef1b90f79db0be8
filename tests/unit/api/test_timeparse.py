"""The one time-window parser: both ends included, ``since`` after ``until`` refused."""

from __future__ import annotations

import pytest

from api.timeparse import DAY_MS, window
from infra.problems import Problem

T = 1_772_359_200_000  # 2026-03-01T10:00:00Z


def test_one_instant_is_a_window_and_one_millisecond_later_is_not() -> None:
    assert window(str(T), str(T), 0) == (T, T)
    assert window("2026-03-01T10:00:00Z", "2026-03-01T10:00:00.000Z", 0) == (T, T)
    with pytest.raises(Problem, match="since must not be after until") as refused:
        window(str(T + 1), str(T), 0)
    assert refused.value.status == 400


def test_defaults_the_beginning_or_a_lookback_before_until() -> None:
    assert window(None, None, T) == (0, T)
    assert window(None, str(T), 0, lookback_ms=30 * DAY_MS) == (T - 30 * DAY_MS, T)
    assert window("", None, T, lookback_ms=DAY_MS) == (T - DAY_MS, T)
