"""The API's FastAPI application, built by :func:`create_app` (a uvicorn factory)."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api import metrics
from api.docs import install_openapi
from api.erasure import Eraser
from api.readmodel import ReadModel
from api.routes_accounts import router as accounts_router
from api.routes_analytics import router as analytics_router
from api.routes_customers import hot as customers_hot_router
from api.routes_customers import router as customers_router
from api.routes_map import router as map_router
from api.routes_moments import router as moments_router
from api.routes_rules import router as rules_router
from api.routes_stages import router as stages_router
from api.routes_stream import router as stream_router
from api.routes_webhooks import router as webhooks_router
from api.splits import Splitter
from api.stream_hub import StreamHub
from infra import gc_tuning
from infra.config_check import redacted
from infra.logs import configure_logging, started_line
from infra.observability import RequestMetrics, worker_metrics
from infra.problems import JSONBody, Problem
from infra.redis_clients import async_client
from infra.service_kit import add_ops_routes, handle_problems, problem_answer, unavailable
from infra.webhook_store import WebhookStore
from store.keys import Keys
from touchpath.settings import Settings, load_settings
from touchpath.settings_views import ApiSettings
from touchpath.stages import StageModel, load_stage_model

log = logging.getLogger(__name__)
DESCRIPTION = """Where each customer stands in their journey, for marketing tools.

Authenticate with `Authorization: Bearer <token>` (`TOUCHPATH_API_TOKENS`): the `read` scope
for every GET, `admin` to erase a customer. Collector write keys do not work here.
Errors are `application/problem+json` (RFC 9457); invalid parameters answer 400 with the
field errors. Times are ISO-8601 UTC; query times accept ISO-8601 or epoch milliseconds.
Lists are paged with an opaque `cursor`: pass the `next_cursor` of a page to get the next."""


def create_app(settings: Settings | None = None, tune_gc: bool = True) -> FastAPI:
    """Build the API; settings come from the environment unless given. The stage model is
    loaded here, once; Redis clients are created in the lifespan, never at import time.
    ``tune_gc`` (on for the service, off in tests sharing a process) applies
    :data:`infra.gc_tuning.GC_THRESHOLDS` and freezes the start-up objects."""
    settings = settings or load_settings()
    own = ApiSettings.of(settings)  # what the API reads; the eraser's re-derivation: settings
    configure_logging("api", own.log_level)
    stage_model = _load_stage_model(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = async_client(settings, socket_connect_timeout=2, socket_timeout=10)
        app.state.redis = client
        app.state.read_model = ReadModel(client, own.redis_prefix, stage_model)
        app.state.eraser = Eraser(client, settings, stage_model)
        app.state.splitter = Splitter(client, own.redis_prefix, app.state.eraser.rederive)
        app.state.webhooks = WebhookStore(client, own.redis_prefix)
        live = Keys(own.redis_prefix).live_changes
        app.state.stream_hub = StreamHub(client, live, own.stream_max_clients)
        if tune_gc:
            gc_tuning.tune_gc()
        started_line("api", own.api_host, own.api_port, redis=redacted(own.redis_url))
        try:
            with worker_metrics():
                yield
        finally:
            await app.state.stream_hub.close()
            await client.aclose()

    app = FastAPI(
        title="touchpath API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.settings = own  # what the routes read
    app.state.hash_key = own.identifier_hash_key.encode() or None
    app.state.stage_model = stage_model
    # the hot path sits directly on the app's router, first of the API's routes (included
    # routers are reached through one more routing layer each)
    app.router.routes.extend(customers_hot_router.routes)
    for router in (
        customers_router,
        stages_router,
        accounts_router,
        analytics_router,
        stream_router,
        webhooks_router,
        map_router,
        moments_router,
        rules_router,
    ):
        app.include_router(router)
    add_ops_routes(app, "redis", _redis_reachable)
    handle_problems(app, instance=True)
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for unreachable in (aioredis.ConnectionError, aioredis.TimeoutError):
        app.add_exception_handler(unreachable, _redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _crash)
    app.add_middleware(
        RequestMetrics,
        requests=metrics.REQUESTS,
        seconds=metrics.REQUEST_SECONDS,
        access_log=own.access_log,
    )
    install_openapi(app)
    return app


def _load_stage_model(settings: Settings) -> StageModel:
    try:
        return load_stage_model(settings.rules_file)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"touchpath: TOUCHPATH_RULES_FILE: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _redis_reachable(request: Request) -> bool:
    try:
        return bool(await request.app.state.redis.ping())
    except (aioredis.RedisError, OSError):
        return False


async def _invalid(request: Request, exc: RequestValidationError) -> JSONBody:
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "reason": error["msg"]}
        for error in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    return problem_answer(Problem(400, "Bad Request", detail, errors=errors), request)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONBody:
    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else title
    problem = Problem(exc.status_code, title, detail, headers=dict(exc.headers or {}))
    return problem_answer(problem, request)


async def _redis_down(request: Request, exc: aioredis.RedisError) -> JSONBody:
    log.warning("redis error: %s", exc)
    problem = unavailable(
        "redis", "Service Unavailable", "the journey store (Redis) is unreachable"
    )
    return problem_answer(problem, request)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    problem = Problem(500, "Internal Server Error", "an unexpected error; it was logged")
    return problem_answer(problem, request)
