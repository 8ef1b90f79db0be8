"""The one retry helper: backoff delays, transient errors retried, bugs surfaced."""

from __future__ import annotations

import threading

import pytest

from infra.retry import Backoff, retry


def test_delays_double_up_to_the_cap_and_reset() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


def test_transient_errors_are_retried_until_the_step_lands() -> None:
    calls, seen = iter([ConnectionError("a"), ConnectionError("b"), None]), []

    def step() -> str:
        error = next(calls)
        if error:
            raise error
        return "done"

    stop = threading.Event()
    assert retry(step, (ConnectionError,), stop, seen.append, Backoff(0.001, 0.002)) == "done"
    assert [str(e) for e in seen] == ["a", "b"]


def test_any_other_error_is_a_bug_and_surfaces() -> None:
    def step() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry(step, (ConnectionError,), threading.Event(), lambda _: None)


def test_a_stop_ends_the_retries() -> None:
    stop = threading.Event()

    def step() -> None:
        stop.set()
        raise ConnectionError

    assert retry(step, (ConnectionError,), stop, lambda _: None) is None
