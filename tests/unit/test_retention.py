"""Topics touchpath creates get the configured retention."""

from __future__ import annotations

from infra.kafka import retention_ms
from touchpath.settings import load_settings


def test_retention_per_topic() -> None:
    settings = load_settings(touchpoints_retention_hours=24, stage_changes_retention_hours=48)
    found = retention_ms(settings)
    assert found[settings.topic_touchpoints] == found[settings.topic_dead_letter] == 86_400_000
    assert found[settings.topic_stage_changes] == 2 * 86_400_000
    assert retention_ms(load_settings())[settings.topic_touchpoints] == 7 * 86_400_000
