"""Configuration: TOUCHPATH_* variables parsed and validated with a readable error."""

from __future__ import annotations

import pytest

from touchpath.settings import ConfigError, load_settings


def test_text_variables_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHPATH_WRITE_KEYS", "wk1=website:web,wk2=backend:server")
    monkeypatch.setenv("TOUCHPATH_API_TOKENS", "t1=read,t2=read+admin")
    monkeypatch.setenv("TOUCHPATH_IDENTITY_LIMITS", "user_id=1,email=3")
    monkeypatch.setenv("TOUCHPATH_CORS_ORIGINS", "https://shop.example, https://www.example")
    monkeypatch.setenv("TOUCHPATH_PERSONA_TRAITS", "plan, country,plan")
    settings = load_settings()
    assert settings.persona_traits == ("plan", "country")
    assert settings.write_keys["wk2"].channel == "server"
    assert settings.api_tokens["t2"].scopes == {"read", "admin"}
    assert settings.identity_limits == {"user_id": 1, "email": 3}
    assert settings.cors_origins == ("https://shop.example", "https://www.example")


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("TOUCHPATH_COLLECTOR_PORT", "eighty", "TOUCHPATH_COLLECTOR_PORT"),
        ("TOUCHPATH_WRITE_KEYS", "no-equals-sign", "key=source"),
        ("TOUCHPATH_WRITE_KEYS", "k=site:fax", "unknown channel"),
        ("TOUCHPATH_API_TOKENS", "t=write", "unknown scope"),
        ("TOUCHPATH_REDIS_URL", "http://localhost", "redis://"),
        ("TOUCHPATH_KAFKA_COMPRESSION", "brotli", "TOUCHPATH_KAFKA_COMPRESSION"),
        ("TOUCHPATH_PERSONA_TRAITS", ",".join(f"t{n}" for n in range(21)), "at most 20"),
    ],
)
def test_bad_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_tokens_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHPATH_API_TOKENS", "supersecrettoken")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "supersecrettoken" not in str(error.value)


@pytest.mark.parametrize(
    "value", ["wk_secret_value_123", "wk_secret_value_123=site:fax", "wk_secret_value_123="]
)
def test_write_key_errors_never_show_the_key(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TOUCHPATH_WRITE_KEYS", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "secret_value" not in str(error.value)


def test_privacy_settings_defaults() -> None:
    settings = load_settings()
    assert settings.touchpoints_retention_hours == 168
    assert settings.email_link_ttl_days == 90 and settings.email_click_tie_hours == 48
