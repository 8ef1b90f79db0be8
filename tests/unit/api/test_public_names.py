"""Renames inside the code keep the API's public names: paths, operation ids, answer fields."""

from __future__ import annotations

from api.app import create_app
from touchpath.settings import Settings


def test_renamed_handlers_keep_their_paths_and_operation_ids() -> None:
    paths = create_app(Settings(), tune_gc=False).openapi()["paths"]
    assert paths["/v1/metrics"]["get"]["operationId"] == "business_metrics_v1_metrics_get"
    failed = paths["/v1/subscriptions/dead-letters"]["get"]
    assert failed["operationId"] == "dead_letters_v1_subscriptions_dead_letters_get"
    assert "/v1/stages" in paths and "/v1/flows" in paths
