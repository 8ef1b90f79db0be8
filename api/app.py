"""The API's FastAPI application, built by :func:`create_app` (uvicorn factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from starlette.responses import Response

from api import metrics
from infra.logs import configure_logging
from infra.observability import DEPENDENCY_UP, RequestMetrics, metrics_response
from infra.problems import JSONBody, Problem, problem_response
from touchpath.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API app; settings come from the environment unless given."""
    settings = settings or load_settings()
    configure_logging("api", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(title="touchpath API", version="0.1.0", lifespan=lifespan,
                  default_response_class=JSONBody)
    app.state.settings = settings
    _add_service_routes(app)
    app.add_exception_handler(Problem, _problem)  # type: ignore[arg-type]
    app.add_middleware(RequestMetrics, requests=metrics.REQUESTS, seconds=metrics.REQUEST_SECONDS)
    return app


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: Redis reachable",
             responses={503: {"description": "Redis unreachable"}})
    async def readyz(request: Request) -> JSONBody:
        try:
            up = bool(await request.app.state.redis.ping())
        except (aioredis.RedisError, OSError):
            up = False
        DEPENDENCY_UP.labels("redis").set(1 if up else 0)
        return JSONBody({"status": "ready" if up else "unavailable", "redis": up},
                              status_code=200 if up else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return metrics_response()


async def _problem(_: Request, exc: Problem) -> JSONBody:
    return problem_response(exc)
