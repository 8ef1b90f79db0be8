"""The scenario sent through the unchanged Node client libraries (@segment/analytics-node,
@rudderstack/rudder-sdk-node), installed from npm into a cache directory; skipped with the
reason when node or the npm registry is not reachable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conformance import scenario
from tests.e2e.conftest import WRITE_KEY
from tests.npm import npm_install

PACKAGES = {
    "segment": "@segment/analytics-node@3.1.0",
    "rudder": "@rudderstack/rudder-sdk-node@3.0.13",
}
CACHE = Path.home() / ".cache" / "touchpath-tests" / "node-clients"
DRIVER = Path(__file__).with_name("node_clients.cjs")


@pytest.fixture(scope="module")
def modules() -> Path:
    """``node_modules`` holding both libraries (installed once into the cache)."""
    found = CACHE / "node_modules"
    wanted = [found / spec.rsplit("@", 1)[0] / "package.json" for spec in PACKAGES.values()]
    if all(path.exists() for path in wanted):
        return found
    if not shutil.which("node"):
        pytest.skip("node is needed for the Node client libraries")
    failed = npm_install(CACHE, *PACKAGES.values())
    if failed:
        pytest.skip(f"the Node client libraries could not be installed: {failed}")
    return found


def send(modules: Path, sdk: str, collector: str, calls: list[dict[str, Any]]) -> None:
    done = subprocess.run(
        ["node", str(DRIVER), str(modules), sdk, collector, WRITE_KEY],
        input=orjson.dumps(calls),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_segment_analytics_node(live: dict[str, Any], modules: Path) -> None:
    send(modules, "segment", live["collector"], scenario.calls("segjs", "0333"))
    scenario.check(live["api"], "segjs", "0333", channel="web")


def test_rudder_sdk_node(live: dict[str, Any], modules: Path) -> None:
    send(modules, "rudder", live["collector"], scenario.calls("rudjs", "0444"))
    scenario.check(live["api"], "rudjs", "0444", channel="server")  # its top-level channel
