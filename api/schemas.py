"""Answer shapes, for the OpenAPI document (each with an example) and for tests.

Routes build plain dicts and render them with orjson (no validation on the way out); the
end-to-end tests validate real answers against these models (``extra="forbid"``), so the
documentation cannot drift from what the API sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

AT = "2026-03-02T09:01:00.000Z"


def documented(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


class FieldError(BaseModel):
    """One invalid request field."""

    field: str
    reason: str


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = documented(
        {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "no customer has this email",
            "code": "not_found",
            "message": "no customer has this email",
            "instance": "/v1/customers/ada@example.com/stage",
        }
    )
    type: str
    title: str
    status: int
    detail: str
    code: str
    message: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class RuleDoc(BaseModel):
    """A stage rule as written in the rules file."""

    number: int = Field(description="its place in the file's `rules` list, from 0")
    stage: str
    when: dict[str, Any]


class CausedBy(BaseModel):
    """The event that entered the stage, and the rule that counted it."""

    message_id: str
    at: str
    channel: str
    type: str | None = Field(None, description="the event's type (track, page, identify, …)")
    event: str | None = Field(None, description="the track event's or the page's name")
    rule: RuleDoc | None = Field(
        None, description="the rule that matched (null for entries stored by older versions)"
    )


RULES_VERSION = Field(
    None,
    description="The rules version this answer was derived under (`GET /v1/rules`); while a "
    "changed rules file is being re-evaluated, customers not yet reached show the previous "
    "one. Null for customers derived before rules were versioned.",
)


class StageAnswer(BaseModel):
    """A customer's current stage."""

    model_config = documented(
        {
            "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
            "stage": "decision",
            "entered_at": AT,
            "previous_stage": "consideration",
            "caused_by": {
                "message_id": "m-17",
                "at": AT,
                "channel": "web",
                "type": "track",
                "event": "Checkout Started",
                "rule": {
                    "number": 5,
                    "stage": "decision",
                    "when": {"type": "track", "event": ["Product Added", "Checkout Started"]},
                },
            },
        }
    )
    customer_id: str
    stage: str | None
    entered_at: str | None
    previous_stage: str | None
    caused_by: CausedBy | None
    rules_version: str | None = RULES_VERSION


class IdentityDoc(BaseModel):
    type: str
    value: str


class StageEntryDoc(BaseModel):
    stage: str
    entered_at: str
    message_id: str
    channel: str
    caused_by: CausedBy | None = None


class FirstTouch(BaseModel):
    at: str
    channel: str
    campaign: str | None


class Counts(BaseModel):
    events: int
    by_type: dict[str, int]


class RefusedTie(BaseModel):
    """Two identifiers seen together but kept apart by merge protection."""

    identities: list[IdentityDoc]
    reason: str


class ProfileAnswer(BaseModel):
    """Everything known about a customer, summed over all of its identities."""

    model_config = documented(
        {
            "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
            "identities": [
                {"type": "user_id", "value": "ada"},
                {"type": "email", "value": "ada@example.com"},
                {"type": "anonymous_id", "value": "9f0c7d"},
            ],
            "traits": {"plan": "pro", "email": "ada@example.com"},
            "stage": "purchase",
            "stage_history": [
                {"stage": "awareness", "entered_at": AT, "message_id": "m-1", "channel": "ads"},
                {"stage": "purchase", "entered_at": AT, "message_id": "m-9", "channel": "web"},
            ],
            "first_seen": AT,
            "last_seen": AT,
            "first_touch": {"at": AT, "channel": "ads", "campaign": "spring"},
            "channels": {"ads": 1, "web": 7, "email": 2},
            "counts": {"events": 10, "by_type": {"page": 6, "track": 3, "identify": 1}},
            "orders": 1,
            "revenue": 120.5,
            "refused_ties": [
                {
                    "identities": [
                        {"type": "user_id", "value": "ada"},
                        {"type": "anonymous_id", "value": "shared-kiosk-7"},
                    ],
                    "reason": "more than 50 anonymous_id identifiers",
                }
            ],
        }
    )
    customer_id: str
    identities: list[IdentityDoc]
    traits: dict[str, Any]
    stage: str | None
    stage_history: list[StageEntryDoc]
    first_seen: str | None
    last_seen: str | None
    first_touch: FirstTouch | None
    channels: dict[str, int]
    counts: Counts
    orders: int
    revenue: float
    refused_ties: list[RefusedTie]
    rules_version: str | None = RULES_VERSION
    merged_from: list[str] = Field(
        default_factory=list,
        description="When asked by a former customer id (`type=customer_id`): that id. A "
        "customer's id comes from its strongest identifier (a user id before an email before "
        "an anonymous id, the earliest seen among equals); when customers merge, the ids that "
        "went away keep answering with the current customer.",
    )


class JourneyEntry(BaseModel):
    """One touchpoint."""

    model_config = ConfigDict(extra="forbid")
    id: str
    at: str
    channel: str
    type: str
    source: str | None = None
    event: str | None = None
    properties: dict[str, Any] | None = None
    campaign: dict[str, Any] | None = None


class JourneyPage(BaseModel):
    """A page of the timeline, newest first; pass ``next_cursor`` as ``cursor`` for more."""

    model_config = documented(
        {
            "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
            "entries": [
                {
                    "id": "m-9",
                    "at": AT,
                    "channel": "web",
                    "type": "track",
                    "event": "Order Completed",
                    "properties": {"revenue": 120.5, "currency": "EUR"},
                    "source": "website",
                },
                {
                    "id": "m-1",
                    "at": "2026-02-27T18:12:03.000Z",
                    "channel": "ads",
                    "type": "page",
                    "properties": {"path": "/"},
                    "campaign": {"name": "spring", "source": "google", "medium": "cpc"},
                    "source": "website",
                },
            ],
            "next_cursor": "WzE3NzI0NTYzMjMwMDAsIm0tMSJd",
        }
    )
    customer_id: str
    entries: list[JourneyEntry]
    next_cursor: str | None


class SplitAnswer(BaseModel):
    """What a split did."""

    model_config = documented(
        {
            "identity": {"type": "email", "value": "billing@acme.com"},
            "customer_id": "cus_9d2e4b1c0a7f6e5d4c3b",
            "split_from": "cus_4c1f0e9a2b7d5e6f8a90",
            "split_by": "token-1",
            "split_at": AT,
        }
    )
    identity: IdentityDoc
    customer_id: str
    split_from: str
    split_by: str
    split_at: str


class Erased(BaseModel):
    """What an erasure removed."""

    model_config = documented(
        {
            "customer_id": "cus_4c1f0e9a2b7d5e6f8a90",
            "erased_identities": [
                {"type": "user_id", "value": "ada"},
                {"type": "email", "value": "ada@example.com"},
            ],
            "erased_at": AT,
        }
    )
    customer_id: str
    erased_identities: list[IdentityDoc]
    erased_at: str


class RulesAnswer(BaseModel):
    """The rules in force and the re-evaluation of customers after they changed."""

    model_config = documented(
        {
            "version": "3f9a1c0d2b7e",
            "api_version": "3f9a1c0d2b7e",
            "stages": ["awareness", "consideration", "decision", "purchase", "post-purchase"],
            "previous_version": "8d02e6b4a911",
            "state": "reevaluating",
            "reevaluated_clusters": 41200,
            "clusters_estimate": 120000,
            "started_ms": 1764547200000,
            "finished_ms": None,
        }
    )
    version: str = Field(
        description="The rules version the processors run (a digest of the rules file's "
        "stages, rules and ignore); empty before a processor started."
    )
    api_version: str = Field(description="The rules version this API loaded (stage names).")
    stages: list[str]
    previous_version: str | None
    state: str = Field(
        description="`current`: every customer follows `version`; `reevaluating`: customers "
        "are being derived again (answers carry the `rules_version` they come from)."
    )
    reevaluated_clusters: int
    clusters_estimate: int = Field(description="About how many (customers at the start).")
    started_ms: int | None
    finished_ms: int | None
