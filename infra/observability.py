"""Shared service endpoints: /metrics (multi-process aware), dependency health, ASGI timing."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.logs import request_id

ACCESS_LOG = logging.getLogger("touchpath.access")
PREFLIGHT = "preflight"  # the route label of a CORS preflight (answered before routing)
disable_created_metrics()  # no ``*_created`` series: every service imports this module

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
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


@contextlib.contextmanager
def worker_metrics() -> Iterator[None]:
    """Around a worker's life in multi-worker mode (``PROMETHEUS_MULTIPROC_DIR`` set): on the
    way in, drop the live-gauge files of workers that died without cleaning up (killed, then
    replaced by uvicorn); on the way out, this worker's own (``mark_process_dead``), so a
    gone worker's gauges stop counting. Counters of gone workers stay in the totals."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for pid in _dead_workers(Path(directory)):
            multiprocess.mark_process_dead(pid, directory)
    try:
        yield
    finally:
        if directory:
            multiprocess.mark_process_dead(os.getpid(), directory)


def _dead_workers(directory: Path) -> set[int]:
    """Pids with live-gauge files (``gauge_live…_<pid>.db``) that no longer run."""
    pids = set()
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            pids.add(int(pid))
    return pids


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_response() -> Response:
    """A Starlette response carrying :func:`metrics_payload`."""
    return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Pure-ASGI middleware: times every request by route template and status, and gives it a
    request id (``X-Request-ID`` if the client sent one) that log lines and the response carry.
    """

    def __init__(
        self,
        app: ASGIApp,
        requests: Counter,
        seconds: Histogram,
        label: str = "route",
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.requests = requests
        self.seconds = seconds
        self.label = label
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = _route_of(scope)
            seconds = time.perf_counter() - started
            self.requests.labels(route, str(status)).inc()
            self.seconds.labels(route).observe(seconds)
            if self.access_log:
                access_line(scope["method"], route, status, seconds)
            request_id.reset(token)


def access_line(method: str, route: str, status: int, seconds: float) -> None:
    """One INFO line per request. The route *template* stands for the path: a raw path or a
    query string may carry identifiers, write keys or link tokens, never logged."""
    ms = round(seconds * 1000, 2)
    ACCESS_LOG.info(
        f"{method} {route} {status} {ms} ms",
        extra={"method": method, "route": route, "status": status, "duration_ms": ms},
    )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and 0 < len(value) <= 64:
            return value.decode("latin-1")
    return None


def _route_of(scope: Scope) -> str:
    """The route template; ``preflight`` for a CORS preflight (the CORS middleware answers it
    before routing), ``unmatched`` when no route matched."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return PREFLIGHT if _is_preflight(scope) else "unmatched"


def _is_preflight(scope: Scope) -> bool:
    if scope["method"] != "OPTIONS":
        return False
    names = {name for name, _ in scope.get("headers", ())}
    return b"origin" in names and b"access-control-request-method" in names
