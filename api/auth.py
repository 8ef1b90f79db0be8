"""Bearer-token access: ``read`` for GETs, ``admin`` for erasure.

Tokens come from ``TOUCHPATH_API_TOKENS`` and are compared in constant time
(:func:`touchpath.secrets.lookup_secret`). Only ``Authorization: Bearer <token>`` is read:
the collector's write keys (HTTP Basic, or ``writeKey`` in a body) never authenticate here,
not even when the same string was also configured as a write key.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from infra.problems import Problem
from touchpath.secrets import lookup_secret
from touchpath.settings import ApiToken
from touchpath.settings_views import ApiSettings

REALM = 'Bearer realm="touchpath"'
INVALID = f'{REALM}, error="invalid_token"'


def authorize(request: Request, scope: str) -> ApiToken:
    """The token a request carries if it grants ``scope``: a 401 problem (with a
    ``WWW-Authenticate`` challenge) when it is missing or unknown, a 403 when it lacks it."""
    settings: ApiSettings = request.app.state.settings
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    candidate = credentials.strip() if scheme.lower() == "bearer" else None
    token = lookup_secret(candidate, settings.api_tokens)
    if token is not None and lookup_secret(candidate, settings.write_keys) is not None:
        token = None  # a write key also listed as a token: write keys never work here
    if token is None:
        raise Problem(
            401,
            "Unauthorized",
            "send an API token as 'Authorization: Bearer <token>' "
            "(collector write keys are not API tokens)"
            if candidate is None
            else "unknown API token",
            headers={"WWW-Authenticate": REALM if candidate is None else INVALID},
        )
    if scope not in token.scopes:
        raise Problem(
            403,
            "Forbidden",
            f"this API token lacks the '{scope}' scope",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
        )
    return token


def require(scope: str) -> Callable[[Request], Coroutine[Any, Any, ApiToken]]:
    """A dependency admitting requests whose token grants ``scope``."""

    async def check(request: Request) -> ApiToken:
        return authorize(request, scope)

    check.__name__ = f"require_{scope}"
    return check
