"""Installing npm packages for tests into a cache directory (once; reused across runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def npm_install(cache: Path, *packages: str) -> str | None:
    """``npm install`` the packages into ``cache``; None when done, else why it could not."""
    if not shutil.which("npm"):
        return "npm is not installed"
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(cache),
            "--no-audit",
            "--no-fund",
            "--silent",
            *packages,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return None if done.returncode == 0 else f"npm install failed: {done.stderr[-300:]}"
