"""The store's Lua scripts: each ships in the package, and chunks go after the #! line."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from store import scripts

ROOT = Path(__file__).resolve().parents[3]


def test_every_script_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "scripts/*.lua" in config["tool"]["setuptools"]["package-data"]["store"]
    names = [p.name for p in resources.files("store").joinpath("scripts").iterdir()]
    assert {"profiles.lua", "block.lua", "raise_offsets.lua", "rules_start.lua"} <= set(names)
    for name in names:
        assert scripts.source(name.removesuffix(".lua")).strip()


def test_chunks_go_in_front_of_the_body_after_the_flags_line() -> None:
    flagged = "#!lua flags=no-writes\nreturn 1\n"
    assert scripts.include(flagged) == flagged
    assert scripts.include("return 1\n", "block") == scripts.source("block") + "return 1\n"
    joined = scripts.include(flagged, "block")
    assert joined == "#!lua flags=no-writes\n" + scripts.source("block") + "return 1\n"
