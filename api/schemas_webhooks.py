"""Request and answer models of the webhook subscription endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import documented

_SUBSCRIPTION = {
    "id": "sub_5f2a9c0e1b7d4a33",
    "url": "https://crm.example.com/hooks/touchpath",
    "stages": ["purchase"],
    "transitions": ["consideration->decision"],
    "created_at": "2026-03-01T10:00:00+00:00",
    "description": "CRM: hot leads and new buyers",
    "triggers": ["cart-abandonment"],
}


class NewSubscription(BaseModel):
    """What to deliver where. No stages and no transitions: every stage change."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, examples=["https://crm.example.com/hooks/touchpath"])
    stages: list[str] = Field(default_factory=list, max_length=50, examples=[["purchase"]])
    transitions: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="`from->to` pairs; `*` stands for any stage.",
        examples=[["consideration->decision", "*->purchase"]],
    )
    secret: str | None = Field(
        None,
        description="A Standard Webhooks secret, `whsec_` + base64 of the key bytes; "
        "generated when absent (anything else is a 400).",
    )
    description: str = Field("", max_length=200)
    triggers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="trigger names of the rules file whose firings and cancellations to "
        "deliver; `*`: every trigger. Only triggers: no stage changes.",
        examples=[["cart-abandonment"]],
    )


class SubscriptionDoc(BaseModel):
    """A subscription (its secret is shown only once, when it is created)."""

    model_config = documented(_SUBSCRIPTION)
    id: str
    url: str
    stages: list[str]
    transitions: list[str]
    created_at: str
    description: str
    triggers: list[str] = []


class CreatedSubscription(SubscriptionDoc):
    """The new subscription with its signing secret: keep it, it is not shown again."""

    model_config = documented({**_SUBSCRIPTION, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    secret: str


class SubscriptionList(BaseModel):
    """Every subscription, oldest first."""

    model_config = documented({"subscriptions": [_SUBSCRIPTION]})
    subscriptions: list[SubscriptionDoc]


class Deleted(BaseModel):
    """The subscription that was removed."""

    model_config = documented({"deleted": "sub_5f2a9c0e1b7d4a33"})
    deleted: str


class DeadLetter(BaseModel):
    """A delivery given up after its retries."""

    delivery_id: str
    subscription_id: str
    webhook_id: str
    attempts: int
    last_error: str | None = Field(
        description="`timeout`, `refused`, `bad_response`, `blocked_destination`, `http_3xx`, "
        "`http_4xx` or `http_5xx` (coarse on purpose: no internal detail)"
    )
    given_up_at_ms: int
    body: str


class DeadLetterList(BaseModel):
    """Deliveries given up, oldest first; replay them once the receiver is fixed."""

    model_config = documented(
        {
            "dead_letters": [
                {
                    "delivery_id": "9f1c2a7e0b3d4c5e6f7a8b9c.sub_5f2a9c0e1b7d4a33",
                    "subscription_id": "sub_5f2a9c0e1b7d4a33",
                    "webhook_id": "msg_9f1c2a7e0b3d4c5e6f7a8b9c",
                    "attempts": 10,
                    "last_error": "http_5xx",
                    "given_up_at_ms": 1772359200000,
                    "body": '{"type":"stage.changed","timestamp":"…","data":{…}}',
                }
            ]
        }
    )
    dead_letters: list[DeadLetter]


class ReplayRequest(BaseModel):
    """Which dead letters to deliver again; none named: all of them."""

    model_config = ConfigDict(extra="forbid")
    delivery_ids: list[str] | None = Field(None, max_length=10_000)


class Replayed(BaseModel):
    """The deliveries scheduled again (their retry budget starts afresh)."""

    model_config = documented({"replayed": ["9f1c2a7e0b3d4c5e6f7a8b9c.sub_5f2a9c0e1b7d4a33"]})
    replayed: list[str]
