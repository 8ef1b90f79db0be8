"""Each process's settings view: built from the one Settings, by the same names and variables."""

from __future__ import annotations

import dataclasses

import pytest

from touchpath.settings import Settings, load_settings
from touchpath.settings_views import (
    VIEWS,
    ApiSettings,
    CollectorSettings,
    DispatcherSettings,
    ProcessorSettings,
)


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_every_view_field_is_a_setting_of_the_same_name(view: type) -> None:
    names = {f.name for f in dataclasses.fields(view)}
    assert names <= set(Settings.model_fields)
    built = view.of(Settings())
    assert all(getattr(built, name) == getattr(Settings(), name) for name in names)


def test_views_read_the_same_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHPATH_WEBHOOK_CONCURRENCY", "7")
    monkeypatch.setenv("TOUCHPATH_PROCESSOR_BATCH_SIZE", "123")
    monkeypatch.setenv("TOUCHPATH_WRITE_KEYS", "wk=site:web")
    monkeypatch.setenv("TOUCHPATH_API_TOKENS", "tok=read")
    settings = load_settings()
    assert DispatcherSettings.of(settings).webhook_concurrency == 7
    assert ProcessorSettings.of(settings).processor_batch_size == 123
    assert CollectorSettings.of(settings).write_keys["wk"].source == "site"
    assert ApiSettings.of(settings).api_tokens["tok"].scopes == {"read"}


def test_a_view_holds_only_its_process_settings_and_is_frozen() -> None:
    dispatcher = DispatcherSettings.of(Settings())
    assert not hasattr(dispatcher, "write_keys") and not hasattr(dispatcher, "api_tokens")
    assert not hasattr(ProcessorSettings.of(Settings()), "webhook_concurrency")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dispatcher.webhook_concurrency = 1  # type: ignore[misc]
