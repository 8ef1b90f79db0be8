"""The dispatcher's decisions alone: fan-out, signing, the retry schedule and giving up."""

from __future__ import annotations

import random

import orjson
import pytest

from dispatcher.delivery import BLOCKED
from dispatcher.plan import after_attempt, attempt_headers, jobs_for, new_job
from touchpath.signatures import SignatureError, verify_standard
from touchpath.webhooks import RetryPolicy, Subscription, new_subscription

STAGES = ["awareness", "consideration", "decision", "purchase", "post-purchase"]
CHANGE = {
    "change_id": "c1",
    "to": "decision",
    "from": "consideration",
    "at_ms": 1_700_000_000_000,
    "kind": "advance",
    "customer_id": "k1",
}


def sub(*stages: str) -> Subscription:
    return new_subscription("https://x.example/hook", list(stages), [], STAGES)


def test_a_change_makes_one_job_per_matching_subscription() -> None:
    everything, decisions, purchases = sub(), sub("decision"), sub("purchase")
    jobs = jobs_for([CHANGE, CHANGE], [everything, decisions, purchases], lambda: 42)
    assert sorted(jobs) == sorted([f"c1.{everything.id}", f"c1.{decisions.id}"])
    job = jobs[f"c1.{decisions.id}"]
    assert job["sub"] == decisions.id and job["webhook_id"] == "msg_c1"
    assert job["attempts"] == 0 and job["first_ms"] == job["stored_ms"] == 42
    assert orjson.loads(job["body"])["data"] == CHANGE


def test_attempt_headers_verify_with_the_subscriptions_secret() -> None:
    made = sub()
    job = new_job(CHANGE, made, 0)
    headers = attempt_headers(made, job, 1_700_000_000)
    assert headers["webhook-id"] == "msg_c1" and headers["webhook-timestamp"] == "1700000000"
    assert headers["content-type"] == "application/json"
    body = job["body"].encode()
    verify_standard(made.secret, headers, body, now=1_700_000_000)  # raises if wrong
    other = attempt_headers(sub(), job, 1_700_000_000)
    with pytest.raises(SignatureError):
        verify_standard(made.secret, other, body, now=1_700_000_000)


def test_a_2xx_answer_is_delivered_unchanged() -> None:
    job = new_job(CHANGE, sub(), 0)
    then = after_attempt(job, None, RetryPolicy(), 1000)
    assert (then.outcome, then.job, then.delay_s) == ("delivered", job, None)


def test_failures_are_retried_on_the_policys_schedule_then_given_up() -> None:
    policy = RetryPolicy(base_s=1, cap_s=8, max_attempts=4, max_age_s=3600, rng=random.Random(1))
    job, now = new_job(CHANGE, sub(), 0), 0
    delays = []
    for attempt in range(1, 4):
        then = after_attempt(job, "http_5xx", policy, now)
        assert then.outcome == "retry" and then.job["attempts"] == attempt
        assert then.job["last_error"] == "http_5xx"
        assert then.delay_s is not None and 0 <= then.delay_s <= min(8, 2 ** (attempt - 1))
        delays.append(then.delay_s)
        job, now = then.job, now + int(then.delay_s * 1000)
    then = after_attempt(job, "timeout", policy, now)
    assert then.outcome == "dead" and then.job["attempts"] == 4
    assert then.job["last_error"] == "timeout" and then.delay_s is None
    assert job["attempts"] == 3  # the job given is not changed


def test_a_delivery_older_than_the_age_bound_is_given_up() -> None:
    policy = RetryPolicy(base_s=10, cap_s=10, max_attempts=100, max_age_s=60)
    job = new_job(CHANGE, sub(), 0)
    assert after_attempt(job, "refused", policy, 10_000).outcome in {"retry", "dead"}
    assert after_attempt(job, "refused", policy, 61_000).outcome == "dead"


def test_a_blocked_destination_is_given_up_at_once() -> None:
    then = after_attempt(new_job(CHANGE, sub(), 0), BLOCKED, RetryPolicy(), 0)
    assert then.outcome == "dead" and then.job["last_error"] == BLOCKED
