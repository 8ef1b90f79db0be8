"""Logs a person can use: a start-up line and one access line per request, never a secret
from the path or the query string; TOUCHPATH_ACCESS_LOG=false turns them off (issue 18)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import WRITE_KEY, start_service, wait_for

pytestmark = pytest.mark.e2e


def lines_of(log: Path, logger: str) -> list[dict]:
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = orjson.loads(line)
            if record.get("logger") == logger:
                found.append(record)
    return found


def test_collector_logs_its_start_and_each_request_without_secrets(
    module_env: dict[str, str], run_dir: Path
) -> None:
    child = start_service("collector", {**module_env, "TOUCHPATH_LOG_LEVEL": "INFO"}, run_dir)
    base = f"http://127.0.0.1:{child.port}"
    try:
        assert child.log_path is not None
        log = child.log_path
        settings = httpx.get(f"{base}/v1/projects/{WRITE_KEY}/settings?token=tk_hush")
        refused = httpx.post(f"{base}/v1/track", json={"event": "X"}, auth=("wk_wrong", ""))
        assert (settings.status_code, refused.status_code) == (200, 401)

        def two_requests() -> list[dict] | None:
            lines = [r for r in lines_of(log, "touchpath.access") if r["route"] != "/healthz"]
            return lines if len(lines) >= 2 else None

        access = wait_for(two_requests)
    finally:
        child.stop()
    text = log.read_text()
    assert WRITE_KEY not in text and "tk_hush" not in text and "wk_wrong" not in text
    first, second = access
    assert (first["method"], first["route"], first["status"]) == (
        "GET",
        "/v1/projects/{write_key}/settings",
        200,
    )
    assert (second["method"], second["route"], second["status"]) == ("POST", "/v1/track", 401)
    assert second["request_id"] == refused.headers["x-request-id"]
    assert second["duration_ms"] >= 0 and second["level"] == "info"
    started = lines_of(log, "collector")
    assert any("listening on http://127.0.0.1:" in r["message"] and r["version"] for r in started)


def test_access_log_can_be_turned_off(module_env: dict[str, str], run_dir: Path) -> None:
    env = {**module_env, "TOUCHPATH_LOG_LEVEL": "INFO", "TOUCHPATH_ACCESS_LOG": "false"}
    child = start_service("collector", env, run_dir)
    try:
        assert child.log_path is not None
        log = child.log_path
        assert httpx.post(f"http://127.0.0.1:{child.port}/v1/track", json={}).status_code == 401
        wait_for(lambda: lines_of(log, "collector"))  # the start-up line is written
    finally:
        child.stop()
    assert lines_of(log, "touchpath.access") == []
