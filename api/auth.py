"""Bearer-token access: ``read`` for GETs, ``admin`` for erasure; constant-time comparison."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from infra.problems import Problem
from touchpath.secrets import lookup_secret
from touchpath.settings import ApiToken

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="touchpath"'}


def token_of(request: Request) -> ApiToken:
    """The API token a request carries; 401 when missing or unknown."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = lookup_secret(
        credentials.strip() if scheme.lower() == "bearer" else None,
        request.app.state.settings.api_tokens,
    )
    if token is None:
        raise Problem(
            401,
            "Unauthorized",
            "missing or unknown API token: send "
            "'Authorization: Bearer <token>' (collector write keys do not work here)",
            headers=_CHALLENGE,
        )
    return token


def require(scope: str) -> Callable[[Request], Coroutine[Any, Any, ApiToken]]:
    """A dependency that admits tokens having ``scope``; 403 otherwise."""

    async def check(request: Request) -> ApiToken:
        token = token_of(request)
        if scope not in token.scopes:
            raise Problem(403, "Forbidden", f"this token lacks the '{scope}' scope")
        return token

    return check
