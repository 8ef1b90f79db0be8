"""Request rate limits per client IP and per write key (per worker process), answered 429."""

from __future__ import annotations

import math
import time

from fastapi import Request

from infra.problems import Problem
from touchpath.ratelimit import RateLimiter
from touchpath.settings_views import CollectorSettings


class RequestLimits:
    """Both limits; a rate of 0 switches one off. Bursts allow two seconds' worth."""

    def __init__(self, settings: CollectorSettings) -> None:
        tracked = settings.rate_limit_max_clients
        self.by_key = _limiter(settings.rate_limit_per_key, tracked)
        self.by_ip = _limiter(settings.rate_limit_per_ip, tracked)

    def check_ip(self, ip: str | None) -> None:
        """Before reading the body: a flood from one address costs almost nothing."""
        _take(self.by_ip, ip, "client IP")

    def check_key(self, write_key: str) -> None:
        """After authentication."""
        _take(self.by_key, write_key, "write key")


async def limit_by_ip(request: Request) -> None:
    """Router dependency: the per-IP limit on every collector route, not only ingestion
    (email links, tool callbacks, analytics.js settings, the tracker script)."""
    limits: RequestLimits = request.app.state.limits
    limits.check_ip(request.client.host if request.client else None)


def _take(limiter: RateLimiter | None, key: str | None, what: str) -> None:
    if limiter is None or key is None:
        return
    wait = limiter.take(key, time.monotonic())
    if wait:
        raise Problem(
            429,
            "Too many requests",
            f"rate limit for this {what} exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _limiter(rate: float, tracked: int) -> RateLimiter | None:
    return RateLimiter(rate, burst=max(1.0, 2 * rate), max_keys=tracked) if rate else None
