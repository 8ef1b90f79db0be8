"""The dispatcher's decisions, pure: the deliveries a stage change makes, the signed headers
of an attempt, and what follows an attempt's outcome (delivered, tried again later, or given
up: a *failed delivery*). :mod:`dispatcher.service` does the I/O around them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dispatcher.delivery import BLOCKED
from touchpath.signatures import standard_headers
from touchpath.webhooks import (
    RetryPolicy,
    Subscription,
    delivery_body,
    delivery_id,
    matches,
    webhook_id,
)

USER_AGENT = "touchpath-webhooks/1.0"
Job = dict[str, Any]


def jobs_for(
    changes: Iterable[dict[str, Any]],
    subscriptions: Sequence[Subscription],
    clock: Callable[[], int],
) -> dict[str, Job]:
    """Delivery id → a new job, for every subscription each change matches (a change
    delivered twice to one subscription is one job: the id is the same)."""
    jobs: dict[str, Job] = {}
    for change in changes:
        for sub in subscriptions:
            if matches(sub, change):
                jobs[delivery_id(change, sub)] = new_job(change, sub, clock())
    return jobs


def new_job(change: dict[str, Any], sub: Subscription, stored_ms: int) -> Job:
    """A delivery job as stored, before its first attempt."""
    return {
        "sub": sub.id,
        "webhook_id": webhook_id(change),
        "body": delivery_body(change).decode(),
        "attempts": 0,
        "first_ms": stored_ms,
        "stored_ms": stored_ms,
        "last_error": None,
    }


def attempt_headers(sub: Subscription, job: Job, now_s: int) -> dict[str, str]:
    """The headers of one attempt: Standard Webhooks signature over the job's body, signed
    at ``now_s`` with the subscription's secret."""
    return {
        **standard_headers(sub.secret, job["webhook_id"], now_s, job["body"].encode()),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True, slots=True)
class Next:
    """What follows an attempt: ``delivered``, ``retry`` after ``delay_s``, or ``dead`` (given
    up: kept as a failed delivery); ``job`` is the job to store (attempts and error counted)."""

    outcome: Literal["delivered", "retry", "dead"]
    job: Job
    delay_s: float | None = None


def after_attempt(job: Job, error: str | None, policy: RetryPolicy, now_ms: int) -> Next:
    """Decide from an attempt's error (None: answered 2xx). A refused destination is never
    tried again (fix it, then replay); else the policy's schedule, by attempts and age."""
    if error is None:
        return Next("delivered", job)
    attempts = job["attempts"] + 1
    failed = {**job, "attempts": attempts, "last_error": error}
    delay = None
    if error != BLOCKED:
        delay = policy.next_delay(attempts, (now_ms - job["first_ms"]) / 1000)
    if delay is None:
        return Next("dead", failed)
    return Next("retry", failed, delay)
