"""Website helpers: the first-party tracker script, and the settings analytics.js loads.

``@segment/analytics-next`` fetches ``{cdnURL}/v1/projects/{writeKey}/settings`` before it
sends anything; pointing its ``cdnURL`` at the collector makes it send to the collector too
(the settings name the collector as the ``Segment.io`` integration's ``apiHost``).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from infra.problems import JSONBody, Problem
from touchpath.secrets import lookup_secret
from touchpath.settings_views import CollectorSettings

router = APIRouter(tags=["website"])
_SCRIPT_CACHE = "public, max-age=3600"
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


@cache
def tracker_script() -> tuple[bytes, str]:
    """The minified tracker and its ETag (read once from the package)."""
    script = resources.files("collector").joinpath("static/touchpath.js").read_bytes()
    return script, '"' + hashlib.sha256(script).hexdigest()[:20] + '"'


@router.get(
    "/v1/touchpath.js",
    summary="The first-party browser tracker (about 3 KB minified)",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}, 304: {"description": "Unchanged"}},
)
async def touchpath_js(request: Request) -> Response:
    script, etag = tracker_script()
    headers = {"ETag": etag, "Cache-Control": _SCRIPT_CACHE}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(script, media_type="application/javascript; charset=utf-8", headers=headers)


@router.get(
    "/v1/projects/{write_key}/settings",
    summary="Settings for analytics.js (analytics-next) pointing it at this collector",
    responses={404: {"description": "Unknown write key."}},
)
async def analytics_settings(
    request: Request, write_key: Annotated[str, Path(max_length=200)]
) -> JSONBody:
    """Load analytics-next with `cdnURL` set to the collector's URL; it then posts events
    here (`/v1/t`, `/v1/p`, `/v1/i`, … or `/v1/b` when batching)."""
    settings = request.app.state.ingestor.settings
    if lookup_secret(write_key, settings.write_keys) is None:
        raise Problem(404, "Not Found", "unknown write key")
    api_host, protocol = collector_address(settings)
    return JSONBody(settings_document(write_key, f"{api_host}/v1", protocol))


def collector_address(settings: CollectorSettings) -> tuple[str, str]:
    """Host (and path) and scheme browsers reach the collector at: ``TOUCHPATH_PUBLIC_URL``
    (``https://t.example.com`` behind a TLS proxy), else the address it listens on. Never the
    request's ``Host`` header: a client-chosen value in a cacheable answer."""
    if settings.public_url:
        url = urlsplit(settings.public_url)
        return f"{url.netloc}{url.path.rstrip('/')}", url.scheme or "https"
    if settings.collector_host in WILDCARDS:
        raise Problem(
            503,
            "Public URL not configured",
            "set TOUCHPATH_PUBLIC_URL to the collector's public base URL",
        )
    host = settings.collector_host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{settings.collector_port}", "http"


def settings_document(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """The CDN settings analytics-next expects: only the Segment.io integration, no remote
    plugins or middleware (nothing else is fetched)."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
