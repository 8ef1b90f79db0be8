"""JSON responses (orjson) and RFC 9457 problem responses, shared by the collector and the API."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

PROBLEM_TYPE = "application/problem+json"


class JSONBody(JSONResponse):
    """A JSON response rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Problem(Exception):
    """Raise to answer with a problem document: status, short title and a precise detail."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers: dict[str, str] = extra.pop("headers", {})
        self.extra = extra


def problem_response(problem: Problem) -> JSONBody:
    """Render a Problem as ``application/problem+json``."""
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    return JSONBody(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_TYPE
    )
