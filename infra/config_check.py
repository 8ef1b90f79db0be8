"""Configuration checks for the CLI: unknown ``TOUCHPATH_*`` variables and ``touchpath check``."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import redis
from dotenv import dotenv_values

from infra.embedded import redis_reachable
from infra.kafka import broker_reachable
from infra.redis_tuning import shortfalls_of
from touchpath.settings import Settings
from touchpath.stages import RulesError, load_stage_model

#: read by docker-compose.yml, not by the services
COMPOSE_VARIABLES = frozenset(
    {"TOUCHPATH_IMAGE", "TOUCHPATH_COLLECTOR_PUBLISH", "TOUCHPATH_API_PUBLISH"}
)


def known_variables() -> frozenset[str]:
    """Every ``TOUCHPATH_*`` variable touchpath reads."""
    return frozenset(f"TOUCHPATH_{name.upper()}" for name in Settings.model_fields) | (
        COMPOSE_VARIABLES
    )


def configured_variables(dotenv: Path = Path(".env")) -> set[str]:
    """``TOUCHPATH_*`` names set in the environment or in ``.env``."""
    names = set(os.environ)
    if dotenv.is_file():
        names.update(dotenv_values(dotenv))
    return {name for name in names if name.startswith("TOUCHPATH_")}


def unknown_variable_warnings(names: Iterable[str]) -> list[str]:
    """One line per unknown ``TOUCHPATH_*`` name, naming the closest known one."""
    known = known_variables()
    lines = []
    for name in sorted(set(names) - known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"warning: unknown variable {name} is ignored{hint}")
    return lines


def check(settings: Settings, redis_configured: bool) -> tuple[list[str], list[str]]:
    """``touchpath check``: (what was checked and holds, problems), one line each."""
    fine: list[str] = []
    problems: list[str] = []
    try:
        model = load_stage_model(settings.rules_file)
        origin = settings.rules_file or "built-in rules"
        fine.append(f"rules: {origin}: {len(model.stages)} stages")
    except (RulesError, OSError) as exc:
        problems.append(f"TOUCHPATH_RULES_FILE: {exc}")
    if not settings.kafka_bootstrap:
        fine.append("kafka: not set; touchpath up starts its own broker")
    elif broker_reachable(settings.kafka_bootstrap, timeout_s=3):
        fine.append(f"kafka: {settings.kafka_bootstrap} answers")
    else:
        problems.append(f"TOUCHPATH_KAFKA_BOOTSTRAP: {settings.kafka_bootstrap} does not answer")
    url = redacted(settings.redis_url)
    if not redis_configured:
        fine.append("redis: TOUCHPATH_REDIS_URL not set; touchpath up starts its own")
    elif redis_reachable(settings.redis_url, timeout_s=3):
        fine.append(f"redis: {url} answers")
        # works as it is, only less compactly: a note, not a problem
        fine.extend(f"redis: note: {line}" for line in redis_shortfalls(settings.redis_url))
    else:
        problems.append(f"TOUCHPATH_REDIS_URL: {url} does not answer PING")
    if not settings.write_keys:
        fine.append(
            "write keys: none set; touchpath up generates one, `touchpath collector` alone "
            "would answer 401 to every request"
        )
    return fine, problems


def redis_shortfalls(url: str) -> list[str]:
    """What the Redis at ``url`` sets below the store's compact encodings."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        return shortfalls_of(client)
    except (redis.RedisError, OSError):
        return []
    finally:
        client.close()


def redacted(url: str) -> str:
    """``url`` without the password of its user-info part."""
    return re.sub(r"(?<=://)([^:/@]*):[^@/]*@", r"\1:***@", url)
