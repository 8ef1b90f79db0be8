"""Each process's view of the one :class:`touchpath.settings.Settings`: only what it reads.

The environment variables stay those of ``Settings`` (``TOUCHPATH_<FIELD>``); a view copies
its fields by name from settings loaded (and checked) once, so a process never reads another
one's configuration and a test builds exactly what a service needs. The shared edges (Kafka
clients and topics in ``infra.kafka``, the identity policy, the store's bounds) are still
built from ``Settings`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Self

from touchpath.destinations import Network
from touchpath.settings import ApiToken, Settings, WriteKeySource


class _View:
    """Built from settings by field name."""

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """This view of ``settings``."""
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        return cls(**{name: getattr(settings, name) for name in names})


@dataclass(frozen=True, slots=True)
class CollectorSettings(_View):
    """``touchpath collector``: ingest, channels' callbacks, limits."""

    collector_host: str
    collector_port: int
    log_level: str
    write_keys: dict[str, WriteKeySource]
    cors_origins: tuple[str, ...]
    access_log: bool
    kafka_bootstrap: str
    topic_touchpoints: str
    topic_dead_letter: str
    redis_url: str
    replay_redis_url: str
    redis_prefix: str
    redis_cluster: bool
    max_event_bytes: int
    max_request_bytes: int
    rate_limit_per_key: float
    rate_limit_per_ip: float
    rate_limit_max_clients: int
    public_url: str
    email_link_key: str
    email_link_old_keys: tuple[str, ...]
    email_link_ttl_days: int
    email_click_tie_hours: int
    sendgrid_public_key: str
    mailgun_signing_key: str
    intercom_client_secret: str
    zendesk_signing_secret: str
    chat_webhook_secret: str
    webhook_tolerance_s: int
    identifier_hash_key: str
    phone_region: str


@dataclass(frozen=True, slots=True)
class ProcessorSettings(_View):
    """``touchpath processor``: the consumer loop, its pauses, lag and triggers."""

    processor_host: str
    processor_metrics_port: int
    log_level: str
    redis_url: str
    redis_prefix: str
    redis_cluster: bool
    rules_file: Path | None
    consumer_group: str
    topic_touchpoints: str
    topic_dead_letter: str
    topic_stage_changes: str
    topic_trigger_firings: str
    processor_batch_size: int
    processor_max_pending_events: int
    processor_max_dead_letters_per_minute: int
    processor_dead_letter_pause_s: float
    processor_dead_letter_max_pause_s: float
    processor_lag_interval_s: float
    erasure_key: str
    trigger_allowed_lateness_s: float
    trigger_recheck_s: float
    trigger_lease_s: float
    reevaluate: Literal["background", "manual"]
    reevaluate_silently: bool


@dataclass(frozen=True, slots=True)
class DispatcherSettings(_View):
    """``touchpath webhooks``: deliveries of stage changes to subscriptions."""

    webhooks_host: str
    webhooks_metrics_port: int
    log_level: str
    redis_url: str
    redis_prefix: str
    redis_cluster: bool
    webhook_timeout_s: float
    webhook_concurrency: int
    webhook_concurrency_per_subscription: int
    webhook_max_attempts: int
    webhook_max_age_s: float
    webhook_backoff_base_s: float
    webhook_backoff_cap_s: float
    webhook_allowed_networks: tuple[Network, ...]


@dataclass(frozen=True, slots=True)
class ApiSettings(_View):
    """``touchpath api``: the read model, subscriptions, erasure, the stream."""

    api_host: str
    api_port: int
    log_level: str
    access_log: bool
    api_tokens: dict[str, ApiToken]
    write_keys: dict[str, WriteKeySource]  # the journey map's page shows the browser key
    redis_url: str
    redis_prefix: str
    redis_cluster: bool
    rules_file: Path | None
    erasure_key: str
    identifier_hash_key: str
    phone_region: str
    webhook_allowed_networks: tuple[Network, ...]
    stream_max_clients: int
    lapse_days: int
    persona_traits: tuple[str, ...]


VIEWS: tuple[type[_View], ...] = (
    CollectorSettings,
    ProcessorSettings,
    DispatcherSettings,
    ApiSettings,
)
