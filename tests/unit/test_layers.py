"""The layers of docs/architecture.md, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"collector", "processor", "dispatcher", "api"}
#: what each package may import from touchpath's own packages
ALLOWED = {
    "touchpath": {"touchpath"},
    "store": {"touchpath", "store"},
    "infra": {"touchpath", "store", "infra"},
    **{service: {"touchpath", "store", "infra", service} for service in SERVICES},
    "launcher": {"touchpath", "store", "infra", "launcher", *SERVICES},
}
#: the one exception left (recorded in the issues): the API re-derives with the resolver
EXCEPTIONS = {("api", "processor.resolver"), ("api", "processor.store")}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_package_imports_one_above_it_or_beside_it() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in _modules(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in ALLOWED and top not in allowed and (package, name) not in EXCEPTIONS:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_only_infra_imports_kafka_python() -> None:
    """The services reach Kafka through infra.streams (or infra.kafka), never kafka-python."""
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in ALLOWED
        if package != "infra"
        for path in _modules(package)
        for name in _imports(path)
        if name.split(".")[0] == "kafka"
    ]
    assert wrong == []
