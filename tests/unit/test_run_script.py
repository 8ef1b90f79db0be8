"""``./run up`` installs only what the service needs and says what it does, step by step."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = '#!/bin/sh\necho "$@" >> "$(dirname "$0")/../calls"\n'
FAKE_TOUCHPATH = '#!/bin/sh\necho "touchpath $@"\n'


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of ``run`` and ``pyproject.toml`` whose virtualenv records its pip calls."""
    shutil.copy(ROOT / "run", tmp_path / "run")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("touchpath", FAKE_TOUCHPATH)):
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o700 | stat.S_IXUSR)
    return tmp_path


def up(checkout: Path, *args: str) -> tuple[list[str], list[str]]:
    """``./run up ARGS``: its output lines and the virtualenv's python calls so far."""
    result = subprocess.run(
        ["bash", str(checkout / "run"), "up", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    calls = (checkout / ".venv" / "calls").read_text(encoding="utf-8").splitlines()
    return result.stdout.splitlines(), calls


def test_up_installs_the_service_without_the_dev_extras(checkout: Path) -> None:
    out, calls = up(checkout, "--ephemeral")
    assert [call for call in calls if " -e " in call] == ["-m pip install -q -e ."], calls
    assert out[-1] == "touchpath up --ephemeral"


def test_up_prints_each_step_with_its_time(checkout: Path) -> None:
    out, _ = up(checkout)
    steps = [line for line in out if " … " in line]
    assert [re.sub(r" … \d+\.\d s$", "", line) for line in steps] == [
        "upgrading pip",
        "installing dependencies",
    ], out
    again, calls = up(checkout)
    assert again == ["touchpath up"]  # up to date: nothing to do, nothing said
    assert len(calls) == 2
