"""docker-compose.yml, deploy/.env.example and the Dockerfile, checked with real Docker Compose."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

TOUCHPATH_PORTS = {"collector": 8080, "processor": 8082, "api": 8081, "webhooks": 8083}
SCALABLE = ("collector", "processor", "webhooks")
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
PROFILES = {
    "default": (),
    "three-brokers": ("--profile", "three-brokers"),
    "proxy": ("--profile", "proxy"),
    "redis-cluster": ("--profile", "redis-cluster"),
}

Tool = Callable[..., Any]


@pytest.fixture(scope="module")
def resolved(compose: Tool) -> dict[str, dict[str, Any]]:
    """The fully interpolated configuration per profile, as Docker Compose itself sees it."""
    configs = {}
    for name, flags in PROFILES.items():
        result = compose(*flags, "config", "--format", "json")
        assert result.returncode == 0, result.stderr
        configs[name] = json.loads(result.stdout)
    return configs


@pytest.fixture(scope="module")
def services(resolved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every service of every profile."""
    merged: dict[str, Any] = {}
    for config in resolved.values():
        merged.update(config["services"])
    return merged


# --- the validator accepts the real file and rejects broken ones ---------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid(compose: Tool, profile: str) -> None:
    result = compose(*PROFILES[profile], "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_three_brokers_profile_adds_the_brokers(compose: Tool) -> None:
    default = compose("config", "--services").stdout.split()
    cluster = compose(*PROFILES["three-brokers"], "config", "--services").stdout.split()
    assert not set(BROKERS) & set(default)
    assert set(BROKERS) <= set(cluster)
    assert set(default) <= set(cluster)


def test_proxy_profile_puts_caddy_in_front(resolved: dict[str, dict[str, Any]]) -> None:
    assert "proxy" not in resolved["default"]["services"]
    config = resolved["proxy"]
    proxy = config["services"]["proxy"]
    assert re.fullmatch(r"caddy:2\.\d+\.\d+-alpine", proxy["image"])
    assert {p["target"] for p in proxy["ports"]} == {80, 443}
    assert set(proxy["depends_on"]) == {"collector", "api"}
    mounts = {v["target"]: v for v in proxy["volumes"]}
    assert mounts["/etc/caddy/Caddyfile"]["source"].endswith("deploy/caddy/Caddyfile")
    assert {mounts["/data"]["type"], mounts["/config"]["type"]} == {"volume"}


def test_only_the_proxy_is_trusted(resolved: dict[str, dict[str, Any]]) -> None:
    """The collector and the API believe forwarded headers from the proxy's fixed address
    alone, which Docker never hands to another container."""
    config = resolved["proxy"]
    address = config["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    for name in ("collector", "api"):
        assert config["services"][name]["environment"]["TOUCHPATH_TRUSTED_PROXIES"] == address
    (pool,) = config["networks"]["default"]["ipam"]["config"]
    ip = ipaddress.ip_address(address)
    assert ip in ipaddress.ip_network(pool["subnet"])
    assert ip not in ipaddress.ip_network(pool["ip_range"])


def test_caddyfile_proxies_both_services_with_timeouts(repo_root: Path) -> None:
    text = (repo_root / "deploy" / "caddy" / "Caddyfile").read_text(encoding="utf-8")
    assert "dynamic a collector 8080" in text and "reverse_proxy api:8081" in text
    assert "flush_interval -1" in text  # the SSE stream
    for timeout in ("read_header", "read_body", "idle"):
        assert re.search(rf"\b{timeout} \d+[sm]\b", text), timeout
    assert "{$TOUCHPATH_COLLECTOR_DOMAIN" in text and "{$TOUCHPATH_API_DOMAIN" in text


def _unknown_key(doc: dict[str, Any]) -> str:
    doc["services"]["collector"]["healthchek"] = {"test": ["CMD", "true"]}
    return "healthchek"


def _undefined_dependency(doc: dict[str, Any]) -> str:
    doc["services"]["api"]["depends_on"]["zookeeper"] = {"condition": "service_healthy"}
    return "zookeeper"


@pytest.mark.parametrize("breakage", [_unknown_key, _undefined_dependency])
def test_compose_rejects_a_broken_copy(
    compose: Tool,
    compose_doc: dict[str, Any],
    tmp_path: Path,
    breakage: Callable[[dict[str, Any]], str],
) -> None:
    doc = json.loads(json.dumps(compose_doc))
    culprit = breakage(doc)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = compose("config", "--quiet", compose_file=broken)
    assert result.returncode != 0
    assert culprit in result.stderr


def test_required_secrets_must_be_set(compose: Tool, tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    result = compose("config", "--quiet", env_file=empty)
    assert result.returncode != 0
    assert "set it in .env" in result.stderr


# --- structure of the resolved configuration ------------------------------------------------------


@pytest.mark.parametrize("name", TOUCHPATH_PORTS)
def test_touchpath_service_runs_its_subcommand(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["command"] == [name]
    assert service["build"]["context"] and service["image"]
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", TOUCHPATH_PORTS)
def test_touchpath_healthcheck_probes_healthz_with_python(
    services: dict[str, Any], name: str
) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request" in test[3]
    assert f"http://127.0.0.1:{TOUCHPATH_PORTS[name]}/healthz" in test[3]
    assert str(TOUCHPATH_PORTS[name]) in services[name]["expose"]


ONE_SHOT = {"redis-cluster-init"}  # runs once and exits: waited for by completion


def test_every_service_has_a_healthcheck_and_limits(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no resource limits"


@pytest.mark.parametrize("name", SCALABLE)
def test_scalable_services_have_no_fixed_name_or_host_port(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert "container_name" not in service
    for port in service.get("ports", []):
        published = str(port.get("published", ""))
        assert re.fullmatch(r"\d+-\d+", published), f"{name} publishes fixed port {published}"


def _host_ports(service: dict[str, Any]) -> Iterator[int]:
    for port in service.get("ports", []):
        low, _, high = str(port["published"]).partition("-")
        yield from range(int(low), int(high or low) + 1)


def test_published_host_ports_do_not_overlap(services: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for port in _host_ports(service):
            assert port not in seen, f"{name} and {seen[port]} both publish host port {port}"
            seen[port] = name


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert spec["condition"] == wanted, f"{name} -> {dependency}"
            if dependency in services and dependency not in ONE_SHOT:
                assert services[dependency].get("healthcheck"), dependency


def test_touchpath_environment(services: dict[str, Any]) -> None:
    for name in TOUCHPATH_PORTS:
        env = services[name]["environment"]
        assert env["TOUCHPATH_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["TOUCHPATH_REDIS_URL"] == "redis://redis:6379/0"
    assert services["collector"]["environment"]["TOUCHPATH_COLLECTOR_HOST"] == "0.0.0.0"
    assert services["api"]["environment"]["TOUCHPATH_API_HOST"] == "0.0.0.0"
    assert services["collector"]["environment"]["TOUCHPATH_WRITE_KEYS"]
    assert services["api"]["environment"]["TOUCHPATH_API_TOKENS"]


def test_kafka_single_node_kraft(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", kafka["image"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


@pytest.mark.parametrize("node", [1, 2, 3])
def test_three_broker_cluster(services: dict[str, Any], node: int) -> None:
    env = services[f"kafka-{node}"]["environment"]
    assert env["KAFKA_NODE_ID"] == str(node)
    assert f"{node}@kafka-{node}:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka-{node}:9092"


def test_redis_cluster_profile_has_three_masters_and_an_idempotent_init(
    compose: Tool, services: dict[str, Any], repo_root: Path
) -> None:
    default = compose("config", "--services").stdout.split()
    cluster = compose(*PROFILES["redis-cluster"], "config", "--services").stdout.split()
    nodes = ["redis-node-1", "redis-node-2", "redis-node-3"]
    assert not {*nodes, "redis-cluster-init"} & set(default)
    assert {*nodes, "redis-cluster-init"} <= set(cluster)
    config = (repo_root / "deploy" / "redis" / "cluster.conf").read_text()
    assert "cluster-enabled yes" in config and "appendonly yes" in config
    for node in nodes:
        assert services[node]["command"][-2:] == ["--cluster-announce-hostname", node]
    init = " ".join(services["redis-cluster-init"]["entrypoint"])
    assert "cluster_state:ok ||" in init and "--cluster-replicas 0" in init
    for name in ("collector", "processor", "webhooks", "api"):
        waits = services[name]["depends_on"]["redis-cluster-init"]
        assert waits["condition"] == "service_completed_successfully"
        assert "TOUCHPATH_REDIS_CLUSTER" in services[name]["environment"]


def test_redis_persists_with_aof(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-\w+)?", redis["image"])
    assert " ".join(redis["command"]).count("--appendonly yes") == 1
    assert "--maxmemory 768mb --maxmemory-policy noeviction" in " ".join(redis["command"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_stateful_services_use_named_volumes(resolved: dict[str, dict[str, Any]]) -> None:
    config = resolved["three-brokers"]
    for name in ("kafka", *BROKERS, "redis", "prometheus", "grafana"):
        volumes = config["services"][name]["volumes"]
        named = [v["source"] for v in volumes if v["type"] == "volume"]
        assert named and set(named) <= set(config["volumes"]), name


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name not in TOUCHPATH_PORTS:
            assert re.search(r":v?\d+\.\d+\.\d+", service["image"]), service["image"]


def test_bind_mounts_exist(services: dict[str, Any]) -> None:
    for service in services.values():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]


def test_monitoring_mounts_match_their_configs(
    services: dict[str, Any], deploy_yaml: Callable[[str], Any]
) -> None:
    prometheus = services["prometheus"]
    targets = {v["target"] for v in prometheus["volumes"]}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "/etc/prometheus" in targets
    provider = deploy_yaml("grafana/provisioning/dashboards/touchpath.yml")["providers"][0]
    grafana_targets = {v["target"] for v in services["grafana"]["volumes"]}
    assert provider["options"]["path"] in grafana_targets
    assert "/etc/grafana/provisioning" in grafana_targets


# --- .env.example -------------------------------------------------------------------------------


def _env_example(repo_root: Path) -> str:
    return (repo_root / "deploy" / ".env.example").read_text(encoding="utf-8")


def test_env_example_sets_every_required_variable(repo_root: Path) -> None:
    required = set(
        re.findall(r"\$\{(\w+):\?", (repo_root / "docker-compose.yml").read_text(encoding="utf-8"))
    )
    defined = set(re.findall(r"^(\w+)=\S", _env_example(repo_root), flags=re.MULTILINE))
    assert required == {"TOUCHPATH_WRITE_KEYS", "TOUCHPATH_API_TOKENS", "GRAFANA_ADMIN_PASSWORD"}
    assert required <= defined


def test_env_example_documents_three_brokers(repo_root: Path) -> None:
    text = _env_example(repo_root)
    assert "TOUCHPATH_KAFKA_REPLICATION=3" in text
    assert "kafka-1:9092,kafka-2:9092,kafka-3:9092" in text


# --- Dockerfile ---------------------------------------------------------------------------------


def _dockerfile(repo_root: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (repo_root / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(maxsplit=1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def test_hadolint_passes(hadolint: Tool, repo_root: Path) -> None:
    result = hadolint("--no-color", repo_root / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_on_pinned_slim_python(repo_root: Path) -> None:
    instructions = _dockerfile(repo_root)
    base = next(args for op, args in instructions if op == "ARG" and "PYTHON_IMAGE" in args)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", base)
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2 and all("${PYTHON_IMAGE}" in stage for stage in stages)


def test_dockerfile_runs_touchpath_as_non_root(repo_root: Path) -> None:
    instructions = _dockerfile(repo_root)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", '["touchpath"]') in instructions
    assert any(op == "RUN" and "pip install ." in args for op, args in instructions)


def _copied_sources(repo_root: Path) -> set[str]:
    groups = [
        args.split()[:-1]
        for op, args in _dockerfile(repo_root)
        if op == "COPY" and "--from" not in args
    ]
    return {source.removeprefix("./") for group in groups for source in group}


def test_dockerfile_copies_every_package(repo_root: Path) -> None:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = _copied_sources(repo_root)
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= copied


def test_dockerfile_sources_are_in_the_build_context(repo_root: Path) -> None:
    ignored = set((repo_root / ".dockerignore").read_text(encoding="utf-8").split())
    for source in _copied_sources(repo_root):
        assert (repo_root / source).exists(), f"COPY {source}: missing from the repository"
        assert source not in ignored, f"COPY {source}: excluded by .dockerignore"
