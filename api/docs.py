"""The OpenAPI document: bearer security, and problem+json answers with examples.

Routes declare their success answer (model with an example) and any specific problem
(e.g. 404); :func:`install_openapi` adds what every ``/v1`` operation shares: the bearer
scheme, 400/401/403/503 problems, and it replaces FastAPI's 422 ``HTTPValidationError``
(this API answers invalid requests with a 400 problem listing the field errors).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas import ProblemDoc

PROBLEM = "application/problem+json"
_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Invalid request: the field errors are listed.",
        {
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "query.limit: Input should be less than or equal to 500",
            "code": "bad_request",
            "message": "query.limit: Input should be less than or equal to 500",
            "errors": [
                {"field": "query.limit", "reason": "Input should be less than or equal to 500"}
            ],
        },
    ),
    401: (
        "No API token, or an unknown one (`WWW-Authenticate: Bearer` challenge).",
        {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "send an API token as 'Authorization: Bearer <token>' "
            "(collector write keys are not API tokens)",
            "code": "unauthorized",
            "message": "send an API token as 'Authorization: Bearer <token>' "
            "(collector write keys are not API tokens)",
        },
    ),
    403: (
        "The token lacks the scope this operation needs.",
        {
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
            "detail": "this API token lacks the 'admin' scope",
            "code": "forbidden",
            "message": "this API token lacks the 'admin' scope",
        },
    ),
    404: (
        "Not found.",
        {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "no customer has this email",
            "code": "not_found",
            "message": "no customer has this email",
        },
    ),
    503: (
        "Redis is unreachable; retry after the `Retry-After` seconds.",
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the journey store (Redis) is unreachable",
            "code": "service_unavailable",
            "message": "the journey store (Redis) is unreachable",
        },
    ),
}


def problem(status: int, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """A ``responses`` entry documenting a problem answer."""
    return {status: {"description": description or _EXAMPLES[status][0]}}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` produce the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            complete(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> None:
    """Add security and problem answers to every ``/v1`` operation (in place)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem_schema = ProblemDoc.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token of TOUCHPATH_API_TOKENS: `read` scope for GETs, "
            "`admin` to erase.",
        }
    }
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
                for status in (400, 401, 403, 503):
                    responses.setdefault(str(status), {"description": _EXAMPLES[status][0]})
            for status, answer in responses.items():
                if path.startswith("/v1/") and status.isdigit() and int(status) >= 400:
                    example = _EXAMPLES.get(int(status), _EXAMPLES[404])[1]
                    answer["content"] = {
                        PROBLEM: {
                            "schema": {"$ref": "#/components/schemas/Problem"},
                            "example": {**example, "status": int(status)},
                        }
                    }
