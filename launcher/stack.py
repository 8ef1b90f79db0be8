"""``touchpath up``: the whole stack on the embedded default, supervised until Ctrl-C/SIGTERM.

Starts only what is not configured: tansu (durable on a local SeaweedFS unless
``--ephemeral``) unless TOUCHPATH_KAFKA_BOOTSTRAP is set, and its own Redis (AOF in the data
dir) unless TOUCHPATH_REDIS_URL is set — never a Redis that merely answers on the default
address. Creates the topics, runs the services as child processes, prints their URLs and
credentials, and a ``ready`` line once every service is ready; restarts a child that dies
(:mod:`launcher.supervise`) and stops everything when told or when one crashes too often.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from infra.config_check import redacted
from infra.embedded import (
    Child,
    EmbeddedError,
    free_port,
    port_is_free,
    redis_reachable,
    reserve_ports,
    spawn,
    start_redis,
    start_seaweedfs,
    start_tansu,
)
from infra.kafka import ensure_topics
from infra.private import private_dir, private_umask, write_private
from launcher.supervise import GiveUp, Supervisor, answers_200, processor_ready, say, wait_ready
from touchpath.secrets import mask_url
from touchpath.settings import Settings, load_settings

DEFAULT_BROKER_PORT = 19092
DEPENDENCIES = ("seaweedfs", "tansu", "redis")
#: ``ready`` waits for each service's readiness, the processor's with partitions assigned
READY_CHECKS: dict[str, Callable[[Child], bool]] = {
    "collector": lambda child: answers_200(child, "/readyz"),
    "api": lambda child: answers_200(child, "/readyz"),
    "processor": processor_ready,
    "webhooks": lambda child: answers_200(child, "/readyz"),
}


@dataclass
class Stack:
    """The running stack: resolved settings, child processes (started order) and credentials."""

    settings: Settings
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    write_key: str = ""
    server_key: str = ""
    api_token: str = ""
    redis_note: str = ""

    def stop(self) -> None:
        """Stop children in reverse start order (services first, then broker, then storage)."""
        for child in reversed(self.children):
            with suppress(Exception):
                child.stop()
        self.children.clear()


def start_stack(ephemeral: bool = False, settings: Settings | None = None) -> Stack:
    """Start dependencies and services; return once every service answers /healthz."""
    private_umask()  # before anything is written: the data dir holds personal data
    settings = settings or load_settings()
    data_dir = private_dir(settings.data_dir.resolve())
    log_dir = private_dir(data_dir / "logs")
    stack = Stack(settings)
    reserve_ports(port for _, port, _ in _services(settings))  # not for the dependencies
    try:
        stack.env.update(_start_dependencies(stack, data_dir, log_dir, ephemeral))
        stack.env.update(_credentials(stack, settings, data_dir, ephemeral))
        resolved = load_settings(**_overrides(stack.env))
        with step("creating the topics"):
            ensure_topics(resolved)
        stack.settings = resolved
        _start_services(stack, log_dir)
    except BaseException:
        stack.stop()
        raise
    return stack


def _start_dependencies(
    stack: Stack, data_dir: Path, log_dir: Path, ephemeral: bool
) -> dict[str, str]:
    env: dict[str, str] = {}
    settings = stack.settings
    if not settings.kafka_bootstrap:
        weed = None
        if not ephemeral:
            with step("starting the broker's storage (seaweedfs)"):
                weed = start_seaweedfs(data_dir / "seaweedfs", log_dir)
            stack.children.append(weed)
        port = DEFAULT_BROKER_PORT if port_is_free(DEFAULT_BROKER_PORT) else free_port()
        with step("starting the broker (tansu)"):
            stack.children.append(start_tansu(port, log_dir, weed))
        env["TOUCHPATH_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{port}"
    if redis_configured(settings):
        # only what was configured: never a Redis that merely happens to answer on the default
        if not redis_reachable(settings.redis_url):
            raise EmbeddedError(
                f"TOUCHPATH_REDIS_URL={redacted(settings.redis_url)} does not answer; start that "
                "Redis, or unset TOUCHPATH_REDIS_URL and touchpath up starts its own"
            )
        stack.redis_note = "configured by TOUCHPATH_REDIS_URL"
        return env
    with step("starting Redis"):
        redis = start_redis(
            free_port(),
            data_dir / "redis",
            log_dir,
            aof=not ephemeral,
            maxmemory=settings.redis_maxmemory,
        )
    stack.children.append(redis)
    env["TOUCHPATH_REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/0"
    kept = "no AOF: nothing survives a restart" if ephemeral else f"AOF in {data_dir / 'redis'}"
    stack.redis_note = f"started by touchpath up, {kept}"
    return env


@contextmanager
def step(label: str) -> Iterator[None]:
    """One line per start-up step, with the time it took (none if the step fails: its error
    line follows)."""
    started = time.perf_counter()
    yield
    print(f"{label} … {time.perf_counter() - started:.1f} s", flush=True)


def redis_configured(settings: Settings) -> bool:
    """True when TOUCHPATH_REDIS_URL was set (environment, ``.env`` or an override)."""
    return "redis_url" in settings.model_fields_set


def _credentials(
    stack: Stack, settings: Settings, data_dir: Path, ephemeral: bool
) -> dict[str, str]:
    """Configured keys win; otherwise generated ones, kept in data_dir: a website write key
    (browser trust: it is public), a backend write key (server trust: keep it secret) and an
    admin token."""
    stored = data_dir / "credentials.json"
    saved = json.loads(stored.read_text()) if stored.exists() and not ephemeral else {}
    write_key = saved.get("write_key") or "wk_" + secrets.token_urlsafe(18)
    server_key = saved.get("server_key") or "sk_" + secrets.token_urlsafe(24)
    api_token = saved.get("api_token") or "tp_" + secrets.token_urlsafe(24)
    if not ephemeral:
        credentials = {"write_key": write_key, "server_key": server_key, "api_token": api_token}
        write_private(stored, json.dumps(credentials).encode())
    env: dict[str, str] = {}
    if settings.write_keys:
        stack.write_key = next(iter(settings.write_keys))
    else:
        stack.write_key, stack.server_key = write_key, server_key
        env["TOUCHPATH_WRITE_KEYS"] = (
            f"{write_key}=website:web:browser,{server_key}=backend:server:server"
        )
    if settings.api_tokens:
        stack.api_token = next(iter(settings.api_tokens))
    else:
        stack.api_token = api_token
        env["TOUCHPATH_API_TOKENS"] = f"{api_token}=read+admin"
    return env


def _overrides(env: dict[str, str]) -> dict[str, object]:
    return {key.removeprefix("TOUCHPATH_").lower(): value for key, value in env.items()}


def _start_services(stack: Stack, log_dir: Path) -> None:
    settings = stack.settings
    env = {**stack.env, "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    for name, port, variable in _services(settings):
        # a port taken by another process would answer our health check for it, and the
        # service would die on bind only after "ready": refuse clearly up front instead
        if not port_is_free(port, reuse_address=True):
            raise EmbeddedError(
                f"{name} cannot listen on port {port}: it is already in use "
                f"(set {variable} to a free port)"
            )
        argv = [python, "-m", "launcher.cli", name]
        with step(f"starting the {name}"):
            child = spawn(name, argv, port, log_dir / f"{name}.log", env)
            stack.children.append(child)
            _wait_healthy(child, "/healthz")


def _services(settings: Settings) -> list[tuple[str, int, str]]:
    """Each service: its name, its listening port and the variable that sets the port."""
    return [
        ("collector", settings.collector_port, "TOUCHPATH_COLLECTOR_PORT"),
        ("api", settings.api_port, "TOUCHPATH_API_PORT"),
        ("processor", settings.processor_metrics_port, "TOUCHPATH_PROCESSOR_METRICS_PORT"),
        ("webhooks", settings.webhooks_metrics_port, "TOUCHPATH_WEBHOOKS_METRICS_PORT"),
    ]


def _wait_healthy(child: Child, path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{child.port}{path}"
    while time.monotonic() < deadline:
        if not child.alive():
            raise EmbeddedError(f"{child.name} exited during start-up; see {child.log_path}")
        with suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise EmbeddedError(f"{child.name} did not become healthy at {url}")


def print_banner(stack: Stack) -> None:
    """What a user needs to start sending events and asking for stages."""
    settings = stack.settings
    lines = [
        f"collector  http://{settings.collector_host}:{settings.collector_port}",
        f"api        http://{settings.api_host}:{settings.api_port}  (docs at /docs)",
        f"processor  metrics at http://127.0.0.1:{settings.processor_metrics_port}/metrics",
        f"webhooks   metrics at http://127.0.0.1:{settings.webhooks_metrics_port}/metrics",
        f"kafka      {settings.kafka_bootstrap}",
        f"redis      {mask_url(settings.redis_url)}  ({stack.redis_note})",
        f"write key  {stack.write_key}",
        *([f"server key {stack.server_key}"] if stack.server_key else []),
        *(
            ["trust      the write key is public (browser), the server key secret (server)"]
            if stack.server_key
            else []
        ),
        f"api token  {stack.api_token}",
        f"data dir   {settings.data_dir.resolve()}",
        f"logs       {settings.data_dir.resolve() / 'logs'}",
    ]
    print("\n".join(lines), flush=True)


def run_up(ephemeral: bool) -> int:
    """Run the stack in the foreground, restarting children that die; 0 on a clean stop,
    1 when it could not start or a child crashed too often."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack = start_stack(ephemeral=ephemeral)
    except EmbeddedError as exc:
        say(str(exc))
        return 1
    failed = False
    try:
        print_banner(stack)
        with step("waiting until every service is ready"):
            wait_ready(stack.children, READY_CHECKS, timeout_s=120)
        print("ready", flush=True)
        supervisor = Supervisor(
            stack.children,
            restart=lambda child: spawn(
                child.name, child.argv, child.port, child.log_path, child.env
            ),
            dependencies=DEPENDENCIES,
            max_crashes=stack.settings.up_max_crashes,
            window_s=stack.settings.up_crash_window_s,
        )
        while not stop.wait(0.5):
            supervisor.check()
    except (EmbeddedError, GiveUp) as exc:
        say(f"{exc}; stopping")
        failed = True
    stack.stop()
    print("stopped", flush=True)
    return 1 if failed else 0
