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
    LinkKeys,
    anonymous_id_from_cookie,
    click_event,
    is_link_scanner,
    is_machine_open,
    may_tie_browser,
    open_event,
)
from touchpath.settings_views import CollectorSettings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/email", tags=["email"])
SOURCE = "email-links"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_TOKEN = Annotated[
    str, Path(max_length=4096, description="A token made by `touchpath email-links`.")
]
_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Malformed, expired, tampered or foreign token: nothing is recorded."},
    404: {"description": "Email links are not configured (TOUCHPATH_EMAIL_LINK_KEY)."},
}


async def _link_keys(request: Request) -> LinkKeys:
    settings: CollectorSettings = request.app.state.ingestor.settings
    if not settings.email_link_key:
        raise Problem(404, "Not Found", "email links are off: set TOUCHPATH_EMAIL_LINK_KEY")
    keys = [settings.email_link_key, *settings.email_link_old_keys]
    return LinkKeys([k.encode() for k in keys], settings.email_link_ttl_days * 86_400)


Keys = Annotated[LinkKeys, Depends(_link_keys)]


def _link(keys: LinkKeys, token: str, kind: str) -> tuple[EmailLink, datetime]:
    try:
        link, made = keys.read(token)
    except InvalidToken as exc:
        raise Problem(400, "Invalid link", str(exc)) from None
    if (link.url is None) != (kind == "open"):
        raise Problem(400, "Invalid link", f"this token is not an email {kind} token")
    return link, made


@router.get(
    "/open/{token}.gif",
    summary="Open pixel: a 1x1 GIF that records an `Email Opened` touchpoint",
    responses={200: {"content": {"image/gif": {}}}, **_ERRORS},
    response_class=Response,
)
async def email_open(
    request: Request, token: _TOKEN, keys: Keys, ingestor: IngestorDep
) -> Response:
    link, _ = _link(keys, token, "open")
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
    request: Request, token: _TOKEN, keys: Keys, ingestor: IngestorDep
) -> RedirectResponse:
    """When the browser carries the website's `ajs_anonymous_id` cookie, a person's click
    within `TOUCHPATH_EMAIL_CLICK_TIE_HOURS` of the send ties that anonymous id to the
    recipient; later clicks (the email may have been forwarded) and link scanners' do not."""
    link, made = _link(keys, token, "click")
    assert link.url is not None
    now = datetime.now(UTC)
    scanner = is_link_scanner(request.headers.get("user-agent"), request.method)
    window_s = ingestor.settings.email_click_tie_hours * 3600
    anonymous_id = (
        anonymous_id_from_cookie(request.cookies.get(ANONYMOUS_ID_COOKIE))
        if may_tie_browser(scanner, made, now, window_s)
        else None
    )
    event = click_event(link, now, scanner, anonymous_id)
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
