"""The served tracker is small and built from the committed source (collector/static/build.sh)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "collector" / "static"


def test_minified_tracker_is_built_from_the_current_source() -> None:
    built = (STATIC / "touchpath.js").read_text()
    recorded = re.search(r"source sha256:([0-9a-f]{16})", built.splitlines()[0])
    source = hashlib.sha256((STATIC / "touchpath.src.js").read_bytes()).hexdigest()[:16]
    assert recorded and recorded.group(1) == source, "run collector/static/build.sh"


def test_tracker_is_a_few_kilobytes() -> None:
    assert len((STATIC / "touchpath.js").read_bytes()) < 5 * 1024
