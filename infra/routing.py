"""A leaner route class for the hot paths (the API's stage look-up, the collector's ingest)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DirectRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns a :class:`Response`.

    FastAPI then skips its per-request parameter and dependency solving, which costs more
    than the whole stage look-up (measured on 2 cores: about 3,500 against 7,000 requests/s;
    see ``bench/api_bench.py``). The endpoint calls the same helpers the dependencies would
    wrap (e.g. :func:`api.auth.authorize`, :func:`api.deps.parse_identifier`), and its
    OpenAPI operation still comes from the decorator: ``response_model`` and ``responses``
    for the answers, ``openapi_extra`` for the parameters.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint
