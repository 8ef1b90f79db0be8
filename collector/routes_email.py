"""Email links: the open pixel and the click redirect, both behind signed tokens."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from collector import metrics
from collector.channels import ingest_channel_events
from collector.ingest import Ingestor
from collector.routes import IngestorDep
from infra.kafka import BrokerUnavailable
from infra.problems import Problem
from touchpath.email_links import (
    ANONYMOUS_ID_COOKIE,
    EmailLink,
    InvalidToken,
    anonymous_id_from_cookie,
    click_event,
    is_link_scanner,
    is_machine_open,
    open_event,
    read_token,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/email", tags=["email"])
SOURCE = "email-links"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_TOKEN = Annotated[str, Path(description="A signed token made by `touchpath email-links`.")]
_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Malformed, unsigned or tampered token: nothing is recorded."},
    404: {"description": "Email links are not configured (TOUCHPATH_EMAIL_LINK_KEY)."},
}


async def _link_key(request: Request) -> bytes:
    key: str = request.app.state.ingestor.settings.email_link_key
    if not key:
        raise Problem(404, "Not Found", "email links are off: set TOUCHPATH_EMAIL_LINK_KEY")
    return key.encode()


LinkKey = Annotated[bytes, Depends(_link_key)]


def _link(key: bytes, token: str, kind: str) -> EmailLink:
    try:
        link = read_token(key, token)
    except InvalidToken as exc:
        raise Problem(400, "Invalid link", str(exc)) from None
    if (link.url is None) != (kind == "open"):
        raise Problem(400, "Invalid link", f"this token is not an email {kind} token")
    return link


@router.get(
    "/open/{token}.gif",
    summary="Open pixel: a 1x1 GIF that records an `Email Opened` touchpoint",
    responses={200: {"content": {"image/gif": {}}}, **_ERRORS},
    response_class=Response,
)
async def email_open(
    request: Request, token: _TOKEN, key: LinkKey, ingestor: IngestorDep
) -> Response:
    link = _link(key, token, "open")
    client = request.client.host if request.client else None
    machine = is_machine_open(request.headers.get("user-agent"), client)
    event = open_event(link, datetime.now(UTC), machine)
    await ingest_channel_events(request, ingestor, [event], SOURCE, "email")
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.api_route(
    "/click/{token}",
    methods=["GET", "HEAD"],
    summary="Click redirect: 302 to the signed link, recording an `Email Link Clicked`",
    responses={302: {"description": "Redirect to the link the token was signed for."}, **_ERRORS},
    response_class=RedirectResponse,
)
async def email_click(
    request: Request, token: _TOKEN, key: LinkKey, ingestor: IngestorDep
) -> RedirectResponse:
    """When the browser carries the website's `ajs_anonymous_id` cookie, the click ties that
    anonymous id to the recipient. Clicks by link scanners are flagged and do not tie."""
    link = _link(key, token, "click")
    assert link.url is not None
    scanner = is_link_scanner(request.headers.get("user-agent"), request.method)
    anonymous_id = anonymous_id_from_cookie(request.cookies.get(ANONYMOUS_ID_COOKIE))
    event = click_event(link, datetime.now(UTC), scanner, anonymous_id)
    await _record_click(request, ingestor, event)
    return RedirectResponse(link.url, status_code=302, headers=_NO_STORE)


async def _record_click(request: Request, ingestor: Ingestor, event: dict[str, object]) -> None:
    """The person still gets their page when Kafka is down; the lost click is logged (its
    campaign and message, never the recipient) and counted as rejected."""
    try:
        await ingest_channel_events(request, ingestor, [event], SOURCE, "email")
    except BrokerUnavailable:
        properties = event.get("properties")
        campaign = properties.get("campaign_id") if isinstance(properties, dict) else None
        email_id = properties.get("email_id") if isinstance(properties, dict) else None
        log.error(
            "email click not recorded: Kafka unavailable",
            extra={"campaign": campaign, "email_id": email_id},
        )
        metrics.EVENTS_REJECTED.labels(SOURCE, "kafka_unavailable").inc()
