"""Shared service endpoints: /metrics (multi-process aware), dependency health, ASGI timing."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEPENDENCY_UP = Gauge(
    "touchpath_dependency_up",
    "1 when a dependency (kafka, redis) answered its last check.",
    ["dependency"],
    multiprocess_mode="livemin",
)


def metrics_payload() -> bytes:
    """The exposition text; aggregates worker processes when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def metrics_response() -> Response:
    """A Starlette response carrying :func:`metrics_payload`."""
    return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Pure-ASGI middleware timing every HTTP request by route template and status."""

    def __init__(
        self, app: ASGIApp, requests: Counter, seconds: Histogram, label: str = "route"
    ) -> None:
        self.app = app
        self.requests = requests
        self.seconds = seconds
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = _route_of(scope)
            self.requests.labels(route, str(status)).inc()
            self.seconds.labels(route).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


HealthCheck = Callable[[], Awaitable[bool]]
