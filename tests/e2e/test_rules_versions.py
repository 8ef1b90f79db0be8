"""Changed rules end to end: every customer is re-evaluated from the stored events (in the
background, on a customer's next event, or by `touchpath reevaluate`), nobody is wiped, the
indexes follow, corrections are announced, and answers say their rules version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from store.keys import Keys
from tests.conftest import redis_for
from tests.e2e.conftest import READ_TOKEN, send, stack_env, start_service, wait_for
from tests.reference import make_event
from touchpath.stages import load_stage_model, parse_stage_model

#: Other rules: other stage names, the same events, one that counts only under these.
NEW_RULES = """
stages: [visit, shortlist, bought]
rules:
  - {stage: visit, when: {type: page}}
  - {stage: shortlist, when: {type: track, event: [Product Viewed, Wishlist Added]}}
  - {stage: bought, when: {type: track, event: Order Completed}}
"""
OLD = load_stage_model().version
NEW = parse_stage_model(NEW_RULES).version
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
T0 = 1_764_000_000_000


@pytest.fixture
def envs(bootstrap: str, redis_url: str, tmp_path: Path) -> tuple[dict[str, str], Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(NEW_RULES)
    return stack_env(bootstrap, redis_url), rules


def journey(user: str) -> list[dict[str, Any]]:
    """A visit, a product view, a purchase, then a wishlist (which only the new rules see)."""
    return [
        make_event("page", f"{user}-1", T0, userId=user, properties={"path": "/"}),
        make_event("track", f"{user}-2", T0 + 1000, userId=user, event="Product Viewed"),
        make_event("track", f"{user}-3", T0 + 2000, userId=user, event="Order Completed"),
        make_event("track", f"{user}-0", T0 - 5000, userId=user, event="Wishlist Added"),
    ]


def stage_of(api: str, user: str) -> dict[str, Any] | None:
    reply = httpx.get(f"{api}/v1/customers/{user}/stage", headers=READ, timeout=5)
    return reply.json() if reply.status_code == 200 else None


def profile_of(api: str, user: str) -> dict[str, Any]:
    return httpx.get(f"{api}/v1/customers/{user}", headers=READ, timeout=5).json()


def rules_of(api: str) -> dict[str, Any]:
    return httpx.get(f"{api}/v1/rules", headers=READ, timeout=5).json()


def changes(env: dict[str, str], user: str) -> list[dict[str, Any]]:
    client = redis_for(env["TOUCHPATH_REDIS_URL"])
    entries = client.xrange(Keys(env["TOUCHPATH_REDIS_PREFIX"]).live_changes)
    client.close()
    found = [orjson.loads(fields[b"change"]) for _, fields in entries]
    return [c for c in found if f"user_id:{user}" in c.get("identities", [])]


def settle(api: str, users: list[str], version: str) -> None:
    """Wait until every user's answer comes from ``version``."""
    wait_for(
        lambda: all(
            (s := stage_of(api, u)) is not None and s["rules_version"] == version for u in users
        ),
        30,
    )


def test_a_changed_rules_file_re_evaluates_everyone_in_the_background(
    envs: tuple[dict[str, str], Path], run_dir: Path
) -> None:
    env, rules = envs
    send(env, *journey("ann"), *journey("bob")[:2])
    first = start_service("processor", env, run_dir)
    api = start_service("api", env, run_dir)
    base = f"http://127.0.0.1:{api.port}"
    try:
        settle(base, ["ann", "bob"], OLD)
        assert stage_of(base, "ann")["stage"] == "purchase"  # type: ignore[index]
        assert rules_of(base)["state"] == "current"
        first.stop()
        api.stop()

        new_env = {**env, "TOUCHPATH_RULES_FILE": str(rules)}
        second = start_service("processor", new_env, run_dir)
        api = start_service("api", new_env, run_dir)
        base = f"http://127.0.0.1:{api.port}"
        wait_for(lambda: rules_of(base)["state"] == "current", 30)
        state = rules_of(base)
        assert (state["version"], state["previous_version"]) == (NEW, OLD)
        assert state["reevaluated_clusters"] >= 2 and state["finished_ms"]
        ann = stage_of(base, "ann")
        assert ann is not None and (ann["stage"], ann["rules_version"]) == ("bought", NEW)
        history = {e["stage"]: e["message_id"] for e in profile_of(base, "ann")["stage_history"]}
        # the wishlist, earliest of all, counts now; the old stages are gone
        assert history == {"visit": "ann-1", "shortlist": "ann-0", "bought": "ann-3"}
        members = httpx.get(f"{base}/v1/stages/bought/customers", headers=READ, timeout=5)
        assert [c["customer_id"] for c in members.json()["customers"]] == [ann["customer_id"]]
        told = {(c["stage"], c.get("change")) for c in changes(env, "ann")}
        assert {"visit", "shortlist", "bought"} <= {stage for stage, _ in told}

        # one more event: the customer keeps the stages its stored events give
        send(env, make_event("page", "ann-4", T0 + 9000, userId="ann", properties={"path": "/"}))
        wait_for(lambda: profile_of(base, "ann")["counts"]["events"] == 5, 20)
        assert stage_of(base, "ann")["stage"] == "bought"  # type: ignore[index]
        second.stop()
    finally:
        api.stop()


def test_with_manual_re_evaluation_customers_follow_on_their_next_event_or_the_command(
    envs: tuple[dict[str, str], Path], run_dir: Path
) -> None:
    env, rules = envs
    send(env, *journey("cat"), *journey("dan"))
    first = start_service("processor", env, run_dir)
    api = start_service("api", env, run_dir)
    base = f"http://127.0.0.1:{api.port}"
    try:
        settle(base, ["cat", "dan"], OLD)
        first.stop()
        new_env = {**env, "TOUCHPATH_RULES_FILE": str(rules), "TOUCHPATH_REEVALUATE": "manual"}
        second = start_service("processor", new_env, run_dir)
        # cat's next event: cat is re-evaluated first, never derived from the old candidates
        send(env, make_event("page", "cat-5", T0 + 9000, userId="cat", properties={"path": "/"}))
        settle(base, ["cat"], NEW)
        history = {e["stage"] for e in profile_of(base, "cat")["stage_history"]}
        assert history == {"visit", "shortlist", "bought"}
        dan = stage_of(base, "dan")
        assert dan is not None and (dan["stage"], dan["rules_version"]) == ("purchase", OLD)
        assert rules_of(base)["state"] == "reevaluating"

        done = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "reevaluate", "--silent"],
            env=new_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "every customer re-evaluated" in done.stdout
        dan = stage_of(base, "dan")
        assert dan is not None and (dan["stage"], dan["rules_version"]) == ("bought", NEW)
        assert rules_of(base)["state"] == "current"
        assert changes(env, "dan") and all(  # --silent: nothing announced for dan since
            c["stage"] in load_stage_model().stages for c in changes(env, "dan")
        )
        again = subprocess.run(
            [sys.executable, "-m", "launcher.cli", "reevaluate"],
            env=new_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 0 and "nothing to re-evaluate" in again.stdout
        second.stop()
    finally:
        api.stop()
