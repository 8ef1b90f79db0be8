"""What every service answers besides its own routes: /healthz, /readyz, /metrics and
problem responses — for the FastAPI services (:func:`add_ops_routes`,
:func:`handle_problems`, :func:`unavailable`) and, as a tiny threaded server, for the
processes without one (the processor, the webhook dispatcher: :func:`serve_health`)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from infra.observability import DEPENDENCY_UP, metrics_payload, metrics_response
from infra.problems import JSONBody, Problem, problem_response

HEALTHY = {"status": "ok"}


def add_ops_routes(
    app: FastAPI, dependency: str, reachable: Callable[[Request], Awaitable[bool]]
) -> None:
    """/healthz (the process answers), /readyz (``dependency`` — ``kafka`` or ``redis`` —
    is ``reachable``; 503 otherwise, and the dependency gauge follows) and /metrics."""

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return HEALTHY

    name = dependency.capitalize()

    @app.get(
        "/readyz",
        tags=["ops"],
        summary=f"Readiness: {name} reachable",
        responses={503: {"description": f"{name} is unreachable."}},
    )
    async def readyz(request: Request) -> JSONBody:
        up = await reachable(request)
        DEPENDENCY_UP.labels(dependency).set(1 if up else 0)
        return JSONBody(
            {"status": "ready" if up else "unavailable", dependency: up},
            status_code=200 if up else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return metrics_response()


def handle_problems(app: FastAPI, instance: bool = False) -> None:
    """Answer a raised :class:`infra.problems.Problem` as ``application/problem+json``
    (with the request path as ``instance`` if asked)."""

    async def answer(request: Request, exc: Problem) -> JSONBody:
        return problem_answer(exc, request if instance else None)

    app.add_exception_handler(Problem, answer)  # type: ignore[arg-type]


def problem_answer(problem: Problem, request: Request | None = None) -> JSONBody:
    """The problem response, with the request's path as ``instance`` when given."""
    if request is not None:
        problem.extra.setdefault("instance", request.url.path)
    return problem_response(problem)


def unavailable(dependency: str, title: str, detail: str) -> Problem:
    """503 because ``dependency`` failed (its gauge goes to 0); retry after a second."""
    DEPENDENCY_UP.labels(dependency).set(0)
    return Problem(503, title, detail, headers={"Retry-After": "1"})


def serve_health(host: str, port: int, unready: Callable[[], Sequence[str]]) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; /readyz answers 503 with the reasons ``unready``
    gives (e.g. ``{"status":"unavailable","reasons":["redis_full"]}``), 200 when none."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, orjson.dumps(HEALTHY), "application/json")
            elif self.path == "/readyz":
                reasons = list(unready())
                body = {"status": "unavailable", "reasons": reasons} if reasons else None
                self._answer(
                    503 if body else 200,
                    orjson.dumps(body) if body else b'{"status":"ready"}',
                    "application/json",
                )
            elif self.path == "/metrics":
                self._answer(200, metrics_payload(), CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b'{"status":"not found"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
