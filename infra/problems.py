"""JSON responses (orjson) and RFC 9457 problem responses, shared by the collector and the API."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import JSONResponse

PROBLEM_TYPE = "application/problem+json"


class JSONBody(JSONResponse):
    """A JSON response rendered with orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Problem(Exception):
    """Raise to answer with a problem document: status, short title and a precise detail.

    ``code`` is a stable machine-readable reason (default: the title in snake case).
    """

    def __init__(
        self, status: int, title: str, detail: str, *, code: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code or code_of(title)
        self.headers: dict[str, str] = extra.pop("headers", {})
        self.extra = extra


def code_of(title: str) -> str:
    """``"Payload too large"`` -> ``"payload_too_large"``."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "error"


def problem_response(problem: Problem) -> JSONBody:
    """Render a Problem as ``application/problem+json``.

    Besides RFC 9457's members the body carries ``code`` and ``message`` (= ``detail``): the
    Segment-style members that analytics clients (segment-analytics-python, rudder-sdk-python
    and their kin) read to report why a request was refused.
    """
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        "message": problem.detail,
        **problem.extra,
    }
    return JSONBody(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_TYPE
    )
