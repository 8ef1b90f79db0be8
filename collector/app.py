"""The collector's FastAPI application, built by :func:`create_app` (uvicorn factory)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from collector import metrics
from collector.ingest import Ingestor
from collector.limits import RequestLimits, limit_by_ip
from collector.replay import ReplayGuard
from collector.routes import router
from collector.routes_email import router as email_router
from collector.routes_web import router as web_router
from collector.routes_webhooks import router as webhooks_router
from infra import gc_tuning
from infra.kafka import AsyncProducer, BrokerUnavailable
from infra.logs import configure_logging, started_line
from infra.observability import RequestMetrics, worker_metrics
from infra.problems import JSONBody
from infra.redis_clients import async_client
from infra.service_kit import add_ops_routes, handle_problems, problem_answer, unavailable
from touchpath.settings import Settings, load_settings
from touchpath.settings_views import CollectorSettings


def create_app(settings: Settings | None = None, tune_gc: bool = True) -> FastAPI:
    """Build the collector app; settings come from the environment unless given. ``tune_gc``
    (on for the service, off in tests sharing a process): see :mod:`infra.gc_tuning`."""
    settings = settings or load_settings()
    own = CollectorSettings.of(settings)  # what the collector reads; Kafka clients: settings
    configure_logging("collector", own.log_level)
    if not own.write_keys:
        logging.getLogger("collector").warning(
            "no write keys configured: every ingestion request will be answered 401; "
            "set TOUCHPATH_WRITE_KEYS (key=source:channel,…)"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = AsyncProducer(settings)
        app.state.ingestor = Ingestor(own, producer)
        app.state.limits = RequestLimits(own)
        replay_redis = async_client(
            settings,
            own.replay_redis_url or own.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        app.state.replays = ReplayGuard(replay_redis, own.redis_prefix, 2 * own.webhook_tolerance_s)
        if tune_gc:
            gc_tuning.tune_gc()
        started_line(
            "collector",
            own.collector_host,
            own.collector_port,
            kafka=own.kafka_bootstrap,
            write_keys=len(own.write_keys),
        )
        try:
            with worker_metrics():
                yield
        finally:
            producer.close()
            await replay_redis.aclose()

    app = FastAPI(
        title="touchpath collector",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONBody,
        description="Segment-compatible HTTP tracking API. Every 200 means the events "
        "are durable in Kafka (acks=all).",
    )
    # the ingest routes sit directly on the app's router, first: an included router is one
    # more routing layer per request (measured with py-spy on one-event requests)
    app.router.routes.extend(router.routes)
    limited = [Depends(limit_by_ip)]  # the ingest routes check it before reading the body
    app.include_router(email_router, dependencies=limited)
    app.include_router(webhooks_router, dependencies=limited)
    app.include_router(web_router, dependencies=limited)
    add_ops_routes(
        app, "kafka", lambda r: r.app.state.ingestor.producer.ready(own.topic_touchpoints)
    )
    handle_problems(app)
    app.add_exception_handler(BrokerUnavailable, _unavailable)  # type: ignore[arg-type]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(own.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        max_age=600,
    )
    app.add_middleware(
        RequestMetrics,
        requests=metrics.REQUESTS,
        seconds=metrics.REQUEST_SECONDS,
        access_log=own.access_log,
    )
    return app


async def _unavailable(_: Request, exc: BrokerUnavailable) -> JSONBody:
    return problem_answer(
        unavailable(
            "kafka",
            "Service unavailable",
            "Kafka did not acknowledge the write; nothing was stored. Retry after the given delay.",
        )
    )
