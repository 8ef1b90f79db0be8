"""Configuration: every setting is a ``TOUCHPATH_*`` environment variable (or a line in ``.env``).

Settings are built once at start-up by :func:`load_settings`, never at import time, and a bad
value stops the process with one clear line naming the variable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from touchpath.adapters.sendgrid import load_public_key
from touchpath.destinations import Network, parse_networks
from touchpath.events import CHANNELS
from touchpath.identifiers import DEFAULT_PRIORITY
from touchpath.signatures import secret_bytes

SCOPES = frozenset({"read", "admin"})


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable and the fix.
    ``problems`` holds one line per invalid variable."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True, slots=True)
class WriteKeySource:
    """What a collector write key stands for: a source name, its default channel, its trust
    (``browser``: public, in every visitor's browser; ``server``: secret) and, optionally, the
    secret of identity verification (identifies must carry ``context.userHash``)."""

    source: str
    channel: str
    trust: str = "server"
    verification_secret: str = ""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API bearer token and the scopes it grants."""

    name: str
    scopes: frozenset[str]


TRUST_LEVELS = ("browser", "server")


def parse_write_keys(raw: str) -> dict[str, WriteKeySource]:
    """Parse ``key=source[:channel[:trust[:verification secret]]],…``: the channel defaults to
    ``web``, the trust to ``server`` for the ``server`` channel and ``browser`` otherwise."""
    keys: dict[str, WriteKeySource] = {}
    for item in _items(raw):
        key, sep, rest = item.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise ValueError(f"expected key=source[:channel[:trust]], got {_redact(item)!r}")
        source, _, tail = rest.partition(":")
        channel, _, tail = tail.partition(":")
        trust, _, secret = tail.partition(":")
        channel = channel.strip() or "web"
        if channel not in CHANNELS:
            raise ValueError(
                f"unknown channel {channel!r} for source {source.strip()!r}; "
                f"use one of {sorted(CHANNELS)}"
            )
        trust = trust.strip() or ("server" if channel == "server" else "browser")
        if trust not in TRUST_LEVELS:
            raise ValueError(
                f"unknown trust {trust!r} for source {source.strip()!r}; use one of "
                f"{list(TRUST_LEVELS)}"
            )
        keys[key.strip()] = WriteKeySource(source.strip(), channel, trust, secret.strip())
    return keys


def parse_api_tokens(raw: str) -> dict[str, ApiToken]:
    """Parse ``token=read,token2=read+admin`` into tokens with scopes."""
    tokens: dict[str, ApiToken] = {}
    for index, item in enumerate(_items(raw)):
        token, sep, scopes_text = item.partition("=")
        scopes = frozenset(s.strip() for s in scopes_text.split("+") if s.strip())
        if not sep or not token.strip() or not scopes:
            raise ValueError(f"expected token=scope[+scope], got {_redact(item)!r}")
        unknown = scopes - SCOPES
        if unknown:
            raise ValueError(f"unknown scope(s) {sorted(unknown)}; use {sorted(SCOPES)}")
        tokens[token.strip()] = ApiToken(name=f"token-{index + 1}", scopes=scopes)
    return tokens


def parse_limits(raw: str) -> dict[str, int]:
    """Parse ``user_id=1,email=5`` into per-identifier-kind limits (0 = no limit)."""
    limits: dict[str, int] = {}
    for item in _items(raw):
        kind, sep, number = item.partition("=")
        if not sep or not number.strip().isdigit():
            raise ValueError(f"expected kind=number, got {item!r}")
        limits[kind.strip()] = int(number)
    return limits


def parse_priority(raw: str) -> tuple[str, ...]:
    """Parse ``user_id,email,…``: known identifier kinds (``ext:`` for external ids), once each."""
    kinds = _text_list(raw)
    unknown = [kind for kind in kinds if kind not in DEFAULT_PRIORITY]
    if unknown:
        raise ValueError(f"unknown identifier kind(s) {unknown}; use {list(DEFAULT_PRIORITY)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError("lists an identifier kind twice")
    return kinds


def _text_list(raw: str) -> tuple[str, ...]:
    return tuple(_items(raw))


def _items(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _redact(text: str) -> str:
    return text[:3] + "…" if len(text) > 3 else "…"


class Settings(BaseSettings):
    """All of touchpath's configuration, read from ``TOUCHPATH_*`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="TOUCHPATH_", env_file=".env", extra="ignore", frozen=True
    )

    collector_host: str = "127.0.0.1"
    collector_port: int = Field(8080, ge=1, le=65535)
    collector_workers: int = Field(1, ge=1, le=64)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8081, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64)
    processor_host: str = "127.0.0.1"
    processor_metrics_port: int = Field(8082, ge=0, le=65535)

    kafka_bootstrap: str = ""
    kafka_partitions: int = Field(6, ge=1, le=1024)
    kafka_replication: int = Field(1, ge=1, le=16)
    kafka_compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "lz4"
    topic_touchpoints: str = "touchpath.touchpoints"
    topic_dead_letter: str = "touchpath.dead-letter"
    topic_stage_changes: str = "touchpath.stage-changes"
    produce_timeout_s: float = Field(2.0, gt=0, le=30)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "tp"
    data_dir: Path = Path(".touchpath")

    write_keys: Annotated[dict[str, WriteKeySource], NoDecode] = Field(default_factory=dict)
    api_tokens: Annotated[dict[str, ApiToken], NoDecode] = Field(default_factory=dict)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)

    rate_limit_per_key: float = Field(0, ge=0, description="requests/s per write key; 0 = off")
    rate_limit_per_ip: float = Field(0, ge=0, description="requests/s per client IP; 0 = off")
    rate_limit_max_clients: int = Field(
        100_000, ge=100, description="IPs/keys tracked per worker; least recent forgotten"
    )
    max_event_bytes: int = Field(32 * 1024, ge=1024)
    max_request_bytes: int = Field(500 * 1024, ge=1024)

    rules_file: Path | None = None
    reevaluate: Literal["background", "manual"] = Field(
        "background",
        description="when the rules changed: re-evaluate every customer in the background, "
        "or only by hand (`touchpath reevaluate`; customers with new events still are)",
    )
    reevaluate_silently: bool = Field(
        False, description="re-evaluation records what changed without announcing corrections"
    )
    consumer_group: str = "touchpath-processor"
    consumer_session_timeout_ms: int = Field(10_000, ge=1000)
    processor_batch_size: int = Field(2000, ge=1, le=100_000)
    processor_max_pending_events: int = Field(200_000, ge=1)
    # --- hostile input (issue 13): the processor's pauses, the embedded Redis's memory -----
    processor_max_dead_letters_per_minute: int = Field(
        1000, ge=0, description="past it consumption pauses (0 = never)"
    )
    processor_dead_letter_pause_s: float = Field(5.0, gt=0, le=3600)
    processor_dead_letter_max_pause_s: float = Field(60.0, gt=0, le=3600)
    redis_maxmemory: str = Field(
        "1gb", pattern=r"(?i)^\d+(b|k|kb|m|mb|g|gb)?$", description="embedded Redis; 0 = none"
    )
    journey_cap: int = Field(1000, ge=1)
    # --- bounds of the store (issue #13): each overflow is counted, never an error -------
    max_traits: int = Field(200, ge=1, description="distinct traits per identifier")
    max_cluster_identifiers: int = Field(
        200, ge=2, description="identifiers tied into one raw cluster; more ties are refused"
    )
    max_cluster_ties: int = Field(1000, ge=1, description="distinct ties kept per raw cluster")
    dedup_window_hours: int = Field(
        192, ge=1, description="messageIds kept for de-duplication; >= the topic's retention"
    )
    identity_limits: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"user_id": 1, "email": 5, "phone": 5, "anonymous_id": 50}
    )
    phone_region: str = Field(
        "",
        description="ISO region of phone numbers without a country code (e.g. GB); empty: "
        "such numbers are kept apart, never guessed",
    )
    identity_priority: Annotated[tuple[str, ...], NoDecode] = (
        "user_id",
        "email",
        "phone",
        "ext:",
        "anonymous_id",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- operating (issue 18): touchpath up's supervision, the CLI, logs ------------------
    up_max_crashes: int = Field(
        5, ge=1, le=1000, description="crashes of one child within the window before up stops"
    )
    up_crash_window_s: float = Field(60.0, gt=0, le=86_400)
    access_log: bool = Field(True, description="one INFO line per HTTP request (collector, api)")
    # --- operating (issue 18, part 2): lag, proxies, slow clients ------------------------
    processor_lag_interval_s: float = Field(
        5.0, gt=0, le=3600, description="how often the processor measures lag from durable offsets"
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="IPs/CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed"
    )
    http_keep_alive_s: int = Field(5, ge=1, le=300, description="idle time between requests")
    http_header_timeout_s: float = Field(10.0, gt=0, le=300, description="to read a request head")
    http_body_timeout_s: float = Field(30.0, gt=0, le=3600, description="to read a request body")
    http_max_header_bytes: int = Field(32 * 1024, ge=1024, le=1 << 20)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        """``10.0.0.5,10.1.0.0/16,…``: addresses or networks (``*``: any peer)."""
        proxies = _text_list(value) if isinstance(value, str) else value
        for proxy in proxies if isinstance(proxies, tuple) else ():
            if proxy != "*":
                try:
                    ipaddress.ip_network(proxy, strict=False)
                except ValueError:
                    raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return proxies

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        """An absolute http(s) URL: browsers and email links are pointed at it."""
        if value and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError(f"{value!r} must be an absolute http(s) URL without query")
        return value.rstrip("/")

    # --- channels (collector): email links and the tools' signed webhooks ----------------
    public_url: str = Field("", description="the collector's public base URL, for email links")
    email_link_key: str = Field("", description="HMAC key of email open/click link tokens")
    sendgrid_public_key: str = Field("", description="base64 DER ECDSA key of SendGrid")
    mailgun_signing_key: str = ""
    intercom_client_secret: str = ""
    zendesk_signing_secret: str = ""
    chat_webhook_secret: str = Field("", description="Standard Webhooks secret (whsec_…)")
    webhook_tolerance_s: int = Field(300, ge=10, le=86_400)
    # --- stage-change webhooks (the dispatcher, `touchpath webhooks`) ---------------------
    webhooks_host: str = "127.0.0.1"
    webhooks_metrics_port: int = Field(8083, ge=0, le=65535)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="per delivery attempt")
    webhook_concurrency: int = Field(32, ge=1, le=1000)
    webhook_max_attempts: int = Field(10, ge=1, le=100)
    webhook_max_age_s: float = Field(3600, ge=1, description="retry for at most this long")
    webhook_backoff_base_s: float = Field(1.0, gt=0)
    webhook_backoff_cap_s: float = Field(300, gt=0)
    # --- delivery safety and the resumable stream (issue #17) ------------------------------
    webhook_allowed_networks: Annotated[tuple[Network, ...], NoDecode] = Field(
        (), description="CIDRs deliveries may reach although not public (internal receivers)"
    )
    webhook_concurrency_per_subscription: int = Field(
        8, ge=1, le=1000, description="attempts in flight per subscription and dispatcher"
    )
    stream_max_clients: int = Field(100, ge=1, le=100_000, description="SSE streams per process")
    # --- triggers (issue #21): timers on time and absence, fired by the processor ----------
    topic_trigger_firings: str = "touchpath.trigger-firings"
    trigger_allowed_lateness_s: float = Field(
        30.0, ge=0, le=86_400, description="a firing waits this long past its due event time"
    )
    trigger_recheck_s: float = Field(
        3600, gt=0, description="how often a fired `any_event` trigger is looked at again"
    )
    trigger_lease_s: float = Field(
        30, gt=0, le=3600, description="a claimed timer is claimed again after this long"
    )

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    identifier_hash_key: str = Field(
        "", description="when set, emails and phones are stored as keyed hashes"
    )
    # --- privacy (issue 16): erasure markers, retention, email links, replay cache ----------
    erasure_key: str = Field(
        "", description="HMAC key of erasure markers; empty: a key generated once in Redis"
    )
    touchpoints_retention_hours: int = Field(
        168, ge=1, description="Kafka retention of the touchpoint and dead-letter topics"
    )
    stage_changes_retention_hours: int = Field(
        168, ge=1, description="Kafka retention of the stage-change topic"
    )
    email_link_old_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="earlier email link keys, still accepted (rotation)"
    )
    email_link_ttl_days: int = Field(90, ge=1, le=3650, description="how long links work")
    email_click_tie_hours: int = Field(
        48, ge=0, description="after the send, how long a click ties the browser to the recipient"
    )
    replay_redis_url: str = Field(
        "", description="Redis of the collector's replay cache; empty: TOUCHPATH_REDIS_URL"
    )

    @field_validator(
        "write_keys",
        "api_tokens",
        "identity_limits",
        "identity_priority",
        "cors_origins",
        "email_link_old_keys",
        mode="before",
    )
    @classmethod
    def _from_text(cls, value: object, info: ValidationInfo) -> object:
        """Environment values arrive as text: parse each with its field's parser."""
        parser = _TEXT_PARSERS[info.field_name or ""]
        return parser(value) if isinstance(value, str) else value

    @field_validator("sendgrid_public_key", "chat_webhook_secret")
    @classmethod
    def _key_text(cls, value: str, info: ValidationInfo) -> str:
        """Keys given as text must decode (base64 DER, ``whsec_`` + base64)."""
        if value:
            _KEY_CHECKS[info.field_name or ""](value)
        return value

    @model_validator(mode="after")
    def _window_covers_retention(self) -> Settings:
        """A replay must never count twice: Kafka may redeliver anything it still holds."""
        if self.dedup_window_hours < self.touchpoints_retention_hours:
            raise ValueError(
                f"TOUCHPATH_DEDUP_WINDOW_HOURS ({self.dedup_window_hours}) must be at least "
                f"TOUCHPATH_TOUCHPOINTS_RETENTION_HOURS ({self.touchpoints_retention_hours}): "
                "a replay of an event older than the window would count twice"
            )
        return self

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.strip().upper()
        if region and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (e.g. GB, US, DE)")
        return region

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


_KEY_CHECKS: dict[str, Callable[[str], object]] = {
    "sendgrid_public_key": load_public_key,
    "chat_webhook_secret": secret_bytes,
}
_TEXT_PARSERS: dict[str, Callable[[str], object]] = {
    "write_keys": parse_write_keys,
    "api_tokens": parse_api_tokens,
    "identity_limits": parse_limits,
    "identity_priority": parse_priority,
    "cors_origins": _text_list,
    "email_link_old_keys": _text_list,
}


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raise :class:`ConfigError` with a readable reason."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:  # a field's own problem; a model-level one names its fields
                message = f"TOUCHPATH_{str(error['loc'][0]).upper()}: {message}"
            problems.append(message)
        raise ConfigError("invalid configuration: " + "; ".join(problems), problems) from None
