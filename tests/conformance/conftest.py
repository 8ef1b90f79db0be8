"""A live collector + processor + API for the conformance suite, with a default phone region
(``TOUCHPATH_PHONE_REGION=GB``) so that national numbers match international ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import READ_TOKEN, services, stack_env, urls, wait_for

READ = {"Authorization": f"Bearer {READ_TOKEN}"}


class Api:
    """Reads of the live API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=READ, params=params)

    def customer(self, value: str, kind: str = "user_id") -> dict[str, Any] | None:
        """The profile of the customer holding an identifier, or None (404)."""
        response = self.get(f"/v1/customers/{value}", type=kind)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def account(self, group_id: str) -> dict[str, Any] | None:
        response = self.get(f"/v1/accounts/{group_id}")
        return response.json() if response.is_success else None

    def journey(self, value: str, kind: str = "user_id") -> list[dict[str, Any]]:
        """The customer's timeline, newest first ([] while no customer has the identifier)."""
        response = self.get(f"/v1/customers/{value}/journey", type=kind, limit=500)
        entries: list[dict[str, Any]] = response.json()["entries"] if response.is_success else []
        return entries

    def wait_stage(self, value: str, stage: str, kind: str = "user_id") -> dict[str, Any]:
        """The profile, once the customer is at ``stage``."""
        return wait_for(
            lambda: (found := self.customer(value, kind)) and found["stage"] == stage and found
        )


@pytest.fixture(scope="module")
def live(bootstrap: str, redis_url: str, run_dir: Path) -> Iterator[dict[str, Any]]:
    """``{"collector": url, "api": Api}`` of a stack of its own (one per test module)."""
    env = stack_env(bootstrap, redis_url, TOUCHPATH_PHONE_REGION="GB")
    with services(env, run_dir, "collector", "processor", "api") as children:
        collector, api = urls(children, "collector", "api")
        yield {"collector": collector, "api": Api(api)}
