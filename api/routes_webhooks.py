"""Webhook subscriptions (admin scope): create, list, delete; dead letters and replay.

Deliveries themselves are made by the dispatcher (``touchpath webhooks``); see
:mod:`dispatcher.service` and docs/webhooks.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from api import schemas_webhooks as schemas
from api.deps import AdminScope, Stages
from api.docs import problem
from infra.problems import JSONBody, Problem
from infra.webhook_store import WebhookStore
from touchpath.secrets import mask_text
from touchpath.triggers import load_triggers
from touchpath.webhooks import SubscriptionError, new_subscription

router = APIRouter(prefix="/v1/subscriptions", tags=["webhooks"])


async def _store(request: Request) -> WebhookStore:
    store: WebhookStore = request.app.state.webhooks
    return store


Store = Annotated[WebhookStore, Depends(_store)]
SubscriptionId = Annotated[str, Path(max_length=64, examples=["sub_5f2a9c0e1b7d4a33"])]


@router.post(
    "",
    summary="Subscribe a URL to stage changes",
    response_model=schemas.CreatedSubscription,
    status_code=201,
)
async def create_subscription(
    request: Request, body: schemas.NewSubscription, store: Store, stages: Stages, _: AdminScope
) -> Response:
    """Deliveries follow Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`), are retried with exponential backoff and jitter, and land in the
    dead letters when retries run out. The secret is returned only here.

    Refused with 400 and the reason: a URL with credentials (`user:pass@`), a URL naming a
    loopback, private, link-local, CGNAT, unique-local, multicast or unspecified address
    (in any spelling) outside `TOUCHPATH_WEBHOOK_ALLOWED_NETWORKS`, a secret that is not
    `whsec_` + base64. Host names are checked on every delivery, on the address connected to.
    `triggers` names the trigger firings to deliver (`trigger.fired`, `trigger.cancelled`)."""
    allowed = request.app.state.settings.webhook_allowed_networks
    try:
        sub = new_subscription(
            body.url,
            body.stages,
            body.transitions,
            stages.stages,
            body.secret,
            body.description,
            allowed,
            body.triggers,
            trigger_names(request),
        )
    except SubscriptionError as exc:
        raise Problem(400, "Bad Request", str(exc)) from None
    await store.add(sub)
    return JSONBody({**sub.public(), "secret": sub.secret}, status_code=201)


@router.get("", summary="The subscriptions", response_model=schemas.SubscriptionList)
async def list_subscriptions(store: Store, _: AdminScope) -> Response:
    return JSONBody({"subscriptions": [s.public() for s in await store.subscriptions()]})


@router.get(
    "/dead-letters",
    summary="Deliveries given up after their retries",
    response_model=schemas.DeadLetterList,
    operation_id="dead_letters_v1_subscriptions_dead_letters_get",  # the path predates the glossary
)
async def failed_deliveries(store: Store, _: AdminScope) -> Response:
    failed = await store.failed_deliveries()
    return JSONBody({"dead_letters": [_dead(d, job) for d, job in failed]})


@router.post(
    "/dead-letters/replay",
    summary="Deliver dead letters again",
    response_model=schemas.Replayed,
)
async def replay(body: schemas.ReplayRequest, store: Store, _: AdminScope) -> Response:
    """The named deliveries (or all) are due again now, with a fresh retry budget."""
    return JSONBody({"replayed": await store.replay(body.delivery_ids)})


@router.get(
    "/{subscription_id}",
    summary="One subscription",
    response_model=schemas.SubscriptionDoc,
    responses=problem(404, "No such subscription."),
)
async def get_subscription(
    subscription_id: SubscriptionId, store: Store, _: AdminScope
) -> Response:
    sub = await store.subscription(subscription_id)
    if sub is None:
        raise Problem(404, "Not Found", f"no subscription {subscription_id!r}")
    return JSONBody(sub.public())


@router.delete(
    "/{subscription_id}",
    summary="Unsubscribe",
    response_model=schemas.Deleted,
    responses=problem(404, "No such subscription."),
)
async def delete_subscription(
    subscription_id: SubscriptionId, store: Store, _: AdminScope
) -> Response:
    """Pending deliveries of the subscription are dropped when they come due."""
    if not await store.remove(subscription_id):
        raise Problem(404, "Not Found", f"no subscription {subscription_id!r}")
    return JSONBody({"deleted": subscription_id})


def trigger_names(request: Request) -> tuple[str, ...]:
    """The rules file's trigger names (read once per process)."""
    names: tuple[str, ...] | None = getattr(request.app.state, "trigger_names", None)
    if names is None:
        names = load_triggers(request.app.state.settings.rules_file).names
        request.app.state.trigger_names = names
    return names


def _dead(delivery: str, job: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery_id": delivery,
        "subscription_id": job["sub"],
        "webhook_id": job["webhook_id"],
        "attempts": job["attempts"],
        "last_error": mask_text(job.get("last_error") or "") or None,
        "given_up_at_ms": job["dead_ms"],
        "body": job["body"],
    }
