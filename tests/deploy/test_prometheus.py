"""Prometheus scrape config, alert rules and their unit tests, and the Grafana dashboard.

promtool validates the config and rules and runs the rule unit tests; the metric-name check makes
sure every alert and panel refers only to metric families listed in deploy/metrics.txt.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = "deploy/prometheus"
DASHBOARD = "deploy/grafana/dashboards/touchpath.json"
SCRAPED = {"collector": 8080, "processor": 8082, "api": 8081}
BUILTIN_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

REQUIRED_ALERTS = {
    "TouchpathConsumerLagGrowing": (
        "deriv(sum(max by (partition) (touchpath_processor_consumer_lag_records))[5m:",
        "sum(max by (partition) (touchpath_processor_consumer_lag_records)) >",
    ),
    "TouchpathEventsWaiting": ("max(touchpath_processor_consumer_lag_seconds) >",),
    "TouchpathDeadLetters": ("touchpath_processor_dead_letters_total",),
    "TouchpathCollectorErrors": ('touchpath_collector_requests_total{status=~"5.."}',),
    "TouchpathNoEventsReceived": ("touchpath_collector_events_accepted_total[10m]",),
    "TouchpathEventToStageLatencyHigh": (
        "histogram_quantile(0.99",
        "touchpath_processor_event_to_stage_seconds_bucket",
    ),
    "TouchpathRedisUnreachable": ('touchpath_dependency_up{dependency="redis"} == 0',),
    "TouchpathKafkaUnreachable": ('touchpath_dependency_up{dependency="kafka"} == 0',),
    "TouchpathTargetDown": ("up == 0",),
    "TouchpathTargetMissing": tuple(
        f'absent(up{{job="touchpath-{job}"}})'
        for job in ("collector", "processor", "api", "webhooks")
    ),
    "TouchpathCollectorRejectingEvents": (
        "sum(rate(touchpath_collector_events_rejected_total[5m])) /",
        "sum(rate(touchpath_collector_events_accepted_total[5m]))",
    ),
    "TouchpathNoPartitionsAssigned": (
        "(sum(touchpath_processor_partitions_assigned) or vector(0)) == 0 and on()",
    ),
    "TouchpathWebhooksGivenUp": ('touchpath_webhook_deliveries_total{outcome="dead"}',),
    "TouchpathProcessorPausedByDeadLetters": (
        'touchpath_processor_pauses_total{reason="dead_letter_limit"}[10m]',
    ),
    "TouchpathRedisRefusingWrites": ('touchpath_processor_paused{reason="redis_full"}) == 1',),
    "TouchpathRedisMemoryHigh": (
        "touchpath_redis_memory_used_bytes / (touchpath_redis_memory_max_bytes > 0)",
    ),
}
REQUIRED_PANELS = (
    "Ingest rate by channel",
    "Rejects by reason",
    "Produce latency (p50/p99)",
    "Consumer lag per partition",
    "Oldest event not yet durable",
    "Event-to-stage latency p99",
    "Stage distribution",
    "Merges and refused merges",
    "API latency p99",
    "API error rate",
    "Dead letters",
)

Tool = Callable[..., Any]

# --- metric names referenced by a PromQL expression -----------------------------------------------

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def referenced_metrics(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers left once strings, label matchers,
    ranges, grouping clauses, Grafana variables and function calls are removed."""
    text = _STRINGS.sub('""', expr)
    for pattern in (_VARIABLES, _MATCHERS, _RANGES, _GROUPING):
        text = pattern.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def is_exported(name: str, exported: frozenset[str]) -> bool:
    """A listed family, a histogram series of one, or a Prometheus built-in."""
    if name in exported or name in BUILTIN_METRICS:
        return True
    return any(
        name.endswith(suffix) and name.removesuffix(suffix) in exported
        for suffix in HISTOGRAM_SUFFIXES
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le) (rate(a_bucket{x="}"}[5m])) / on(i) group_left(j) b offset 5m',
            {"a_bucket", "b"},
        ),
        ("deriv(sum(lag)[5m:1m]) > 0 and sum(lag) > 1e3", {"lag"}),
        ("(sum(increase(c[$__rate_interval])) or vector(0)) == bool 0", {"c"}),
        ("max without (instance) (up) unless absent(d)", {"up", "d"}),
    ],
)
def test_referenced_metrics(expr: str, names: set[str]) -> None:
    assert referenced_metrics(expr) == names


# --- loaded files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerts(deploy_yaml: Callable[[str], Any]) -> dict[str, dict[str, Any]]:
    """Alerting rules by name."""
    groups = deploy_yaml("prometheus/alerts.yml")["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def dashboard(repo_root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((repo_root / DASHBOARD).read_text(encoding="utf-8"))
    return doc


def _panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from _panels(panel)


def _values(node: Any, wanted: str) -> Iterator[Any]:
    """Every value of a key named ``wanted`` anywhere in a JSON document (not below it)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == wanted:
                yield value
            else:
                yield from _values(value, wanted)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item, wanted)


def _exprs(node: Any) -> Iterator[str]:
    return _values(node, "expr")


def _check_names(exprs: list[str], exported: frozenset[str]) -> None:
    assert exprs
    for expr in exprs:
        unknown = {n for n in referenced_metrics(expr) if not is_exported(n, exported)}
        assert not unknown, f"{expr!r} refers to metrics not in deploy/metrics.txt: {unknown}"


# --- promtool -----------------------------------------------------------------------------------


def _assert_ok(result: Any) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_check_config(promtool: Tool, repo_root: Path) -> None:
    result = promtool("check", "config", repo_root / PROMETHEUS_DIR / "prometheus.yml")
    _assert_ok(result)
    assert "alerts.yml" in result.stdout + result.stderr


def test_promtool_check_rules(
    promtool: Tool, repo_root: Path, alerts: dict[str, dict[str, Any]]
) -> None:
    result = promtool("check", "rules", repo_root / PROMETHEUS_DIR / "alerts.yml")
    _assert_ok(result)
    assert f"{len(alerts)} rules found" in result.stdout


def test_promtool_test_rules(promtool: Tool, repo_root: Path) -> None:
    _assert_ok(promtool("test", "rules", repo_root / PROMETHEUS_DIR / "alerts_test.yml"))


def test_promtool_test_rules_catches_a_wrong_expectation(
    promtool: Tool, repo_root: Path, tmp_path: Path
) -> None:
    source = repo_root / PROMETHEUS_DIR
    shutil.copy(source / "alerts.yml", tmp_path / "alerts.yml")
    text = (source / "alerts_test.yml").read_text(encoding="utf-8")
    broken = text.replace("severity: critical", "severity: page", 1)
    assert broken != text
    (tmp_path / "alerts_test.yml").write_text(broken, encoding="utf-8")
    result = promtool("test", "rules", tmp_path / "alerts_test.yml")
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(
    promtool: Tool, dashboard: dict[str, Any], tmp_path: Path
) -> None:
    exprs = list(_exprs(dashboard))
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = [expr.replace(variable, value) for expr in exprs]
    rules = [{"record": f"dashboard:query_{i}:expr", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    _assert_ok(promtool("check", "rules", path))


# --- alert rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIRED_ALERTS)
def test_required_alert(alerts: dict[str, dict[str, Any]], name: str) -> None:
    rule = alerts[name]
    expr = " ".join(rule["expr"].split())
    for fragment in REQUIRED_ALERTS[name]:
        assert fragment in expr, f"{name}: expected {fragment!r} in {expr!r}"
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_firing_and_quiet_unit_tests(
    alerts: dict[str, dict[str, Any]], deploy_yaml: Callable[[str], Any]
) -> None:
    cases = [
        case
        for test in deploy_yaml("prometheus/alerts_test.yml")["tests"]
        for case in test["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == set(alerts)
    assert quiet == set(alerts)


# --- metric names -------------------------------------------------------------------------------


def test_metrics_txt_is_a_clean_list(repo_root: Path, metric_names: frozenset[str]) -> None:
    rows = [
        line.split() for line in (repo_root / "deploy" / "metrics.txt").read_text().splitlines()
    ]
    assert len(rows) == len({row[0] for row in rows}) == len(metric_names)
    for row in rows:
        assert len(row) == 2 and re.fullmatch(r"touchpath_[a-z0-9_]+", row[0]), row
        assert row[1] in {"counter", "gauge", "histogram"}, row
        assert row[0].endswith("_total") == (row[1] == "counter"), row


def test_alert_expressions_use_exported_metrics(
    alerts: dict[str, dict[str, Any]], metric_names: frozenset[str]
) -> None:
    _check_names([rule["expr"] for rule in alerts.values()], metric_names)


def test_dashboard_expressions_use_exported_metrics(
    dashboard: dict[str, Any], metric_names: frozenset[str]
) -> None:
    _check_names(list(_exprs(dashboard)), metric_names)


def test_name_check_rejects_unknown_metrics(metric_names: frozenset[str]) -> None:
    with pytest.raises(AssertionError, match="touchpath_collector_typo_total"):
        _check_names(["sum(rate(touchpath_collector_typo_total[5m]))"], metric_names)


# --- scrape config --------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SCRAPED)
def test_scrape_discovers_every_replica(
    deploy_yaml: Callable[[str], Any], compose_doc: dict[str, Any], service: str
) -> None:
    config = deploy_yaml("prometheus/prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    jobs = [
        job
        for job in config["scrape_configs"]
        if any(service in sd["names"] for sd in job.get("dns_sd_configs", []))
    ]
    assert len(jobs) == 1, f"{service} must be scraped by exactly one dns_sd job"
    (discovery,) = jobs[0]["dns_sd_configs"]
    assert jobs[0].get("metrics_path", "/metrics") == "/metrics"
    assert (discovery["names"], discovery["type"]) == ([service], "A")
    assert discovery["port"] == SCRAPED[service]
    assert str(SCRAPED[service]) in compose_doc["services"][service]["expose"]


# --- Grafana ------------------------------------------------------------------------------------


DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _datasources(node: Any) -> Iterator[Any]:
    return _values(node, "datasource")


def test_provisioned_datasource_points_at_prometheus(deploy_yaml: Callable[[str], Any]) -> None:
    (source,) = deploy_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert source["isDefault"]  # what the dashboard's data-source variable picks when provisioned


def test_dashboard_takes_its_datasource_as_an_input(dashboard: dict[str, Any]) -> None:
    """Importable into any Grafana: the import asks for DS_PROMETHEUS; provisioned, the
    variable of the same name picks the default Prometheus. No uid is hard-coded."""
    (wanted,) = dashboard["__inputs"]
    assert wanted["name"] == "DS_PROMETHEUS"
    assert (wanted["type"], wanted["pluginId"]) == ("datasource", "prometheus")
    variable = _variables(dashboard)["DS_PROMETHEUS"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert all(p["datasource"] == DATASOURCE for p in panels)
    for source in _datasources(dashboard["panels"]):
        assert source == DATASOURCE
    for variable in _variables(dashboard).values():
        assert variable["type"] == "datasource" or variable["datasource"] == DATASOURCE


def test_dashboard_imports_with_a_chosen_datasource(dashboard: dict[str, Any]) -> None:
    """What Grafana's import does: every ${DS_PROMETHEUS} becomes the chosen uid."""
    text = json.dumps({k: v for k, v in dashboard.items() if not k.startswith("__")})
    imported = json.loads(text.replace("${DS_PROMETHEUS}", "their-prometheus"))
    uids = {source["uid"] for source in _datasources(imported["panels"])}
    assert uids == {"their-prometheus"}
    assert "touchpath-prometheus" not in text


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


@pytest.mark.parametrize(
    ("name", "source"),
    [("instance", "up{"), ("channel", "touchpath_collector_events_accepted_total")],
)
def test_dashboard_variable(dashboard: dict[str, Any], name: str, source: str) -> None:
    variable = _variables(dashboard)[name]
    assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
    assert (
        variable["query"]["query"].startswith("label_values(") and source in variable["definition"]
    )


def test_every_query_uses_the_rate_interval_and_the_instance_variable(
    dashboard: dict[str, Any],
) -> None:
    for expr in _exprs(dashboard["panels"]):
        ranges = re.findall(r"\[([^\]]*)\]", expr)
        assert all(r == "$__rate_interval" for r in ranges), expr
        selectors = re.findall(r"\b(?:touchpath_\w+|up)(\{[^}]*\})?(?![\w(])", expr)
        assert selectors and all('instance=~"$instance"' in s for s in selectors), expr


def test_channel_panels_follow_the_channel_variable(dashboard: dict[str, Any]) -> None:
    by_channel = [e for e in _exprs(dashboard["panels"]) if "by (channel)" in e]
    assert len(by_channel) == 2
    assert all('channel=~"$channel"' in expr for expr in by_channel)


@pytest.mark.parametrize("title", REQUIRED_PANELS)
def test_dashboard_has_panel(dashboard: dict[str, Any], title: str) -> None:
    panel = next((p for p in _panels(dashboard) if p["title"] == title), None)
    assert panel is not None, f"dashboard lacks the {title!r} panel"
    assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"])


def test_dashboard_layout(dashboard: dict[str, Any]) -> None:
    panels = list(_panels(dashboard))
    assert dashboard["uid"] and dashboard["title"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in panels)
