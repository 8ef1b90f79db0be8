"""Token buckets: bursts, refill, Retry-After, bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from touchpath.ratelimit import RateLimiter


def test_burst_then_refusal_with_retry_after() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert [limiter.take("k", 0.0) for _ in range(5)] == [0.0] * 5
    wait = limiter.take("k", 0.0)
    assert 0.09 < wait <= 0.1
    assert limiter.take("k", 0.1) == 0.0  # refilled one token


def test_keys_are_independent() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.take("a", 0) == 0 and limiter.take("b", 0) == 0
    assert limiter.take("a", 0) > 0


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=300))
def test_memory_is_bounded_by_max_keys(keys: list[str]) -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=50)
    for i, key in enumerate(keys):
        limiter.take(key, float(i))
    assert len(limiter) <= 50


@given(st.lists(st.floats(0, 0.5), min_size=1, max_size=200))
def test_never_more_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    limiter = RateLimiter(rate=20, burst=10)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        granted += limiter.take("k", now) == 0.0
    assert granted <= 10 + 20 * now + 1e-9
