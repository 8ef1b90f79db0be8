"""The API's FastAPI application, built by :func:`create_app` (uvicorn factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api import metrics
from api.readmodel import ReadModel
from api.routes_customers import router as customers_router
from api.routes_segments import router as segments_router
from infra.logs import configure_logging
from infra.observability import DEPENDENCY_UP, RequestMetrics, metrics_response
from infra.problems import JSONBody, Problem, problem_response
from touchpath.settings import Settings, load_settings
from touchpath.stages import load_stage_model

DESCRIPTION = """Where each customer stands in their journey.

Authenticate with `Authorization: Bearer <token>` (`TOUCHPATH_API_TOKENS`): the `read` scope
for GETs, `admin` to erase. Errors are `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API app; settings come from the environment unless given."""
    settings = settings or load_settings()
    configure_logging("api", settings.log_level)
    stage_model = load_stage_model(settings.rules_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(settings.redis_url)
        app.state.redis = client
        app.state.read_model = ReadModel(client, settings.redis_prefix)
        app.state.erase_script = client.register_script(
            resources.files("api").joinpath("erase.lua").read_text()
        )
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="touchpath API",
        version="0.1.0",
        lifespan=lifespan,
        description=DESCRIPTION,
        default_response_class=JSONBody,
    )
    app.state.settings = settings
    app.state.stage_model = stage_model
    app.include_router(customers_router)
    app.include_router(segments_router)
    _add_service_routes(app)
    app.add_exception_handler(Problem, _problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(RequestMetrics, requests=metrics.REQUESTS, seconds=metrics.REQUEST_SECONDS)
    return app


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: Redis reachable",
        responses={503: {"description": "Redis unreachable"}},
    )
    async def readyz(request: Request) -> JSONBody:
        try:
            up = bool(await request.app.state.redis.ping())
        except (aioredis.RedisError, OSError):
            up = False
        DEPENDENCY_UP.labels("redis").set(1 if up else 0)
        return JSONBody(
            {"status": "ready" if up else "unavailable", "redis": up},
            status_code=200 if up else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return metrics_response()


async def _problem(_: Request, exc: Problem) -> JSONBody:
    return problem_response(exc)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONBody:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
    ]
    return problem_response(
        Problem(
            400,
            "Invalid request",
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            errors=errors,
        )
    )


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONBody:
    return problem_response(Problem(exc.status_code, "Error", str(exc.detail)))
