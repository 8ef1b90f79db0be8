"""The CLI a self-hoster meets: plain help, --version, `touchpath check`, unknown variables,
refused settings, the collector's warning without write keys (issue 18)."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest

from infra.embedded import free_port, spawn
from launcher.cli import COMMANDS, main
from tests.e2e.conftest import start_service, wait_for


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TOUCHPATH_* variable nor .env but what a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TOUCHPATH_"):
            monkeypatch.delenv(name)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's --help and --version
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_is_plain_text_and_describes_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "``" not in out
    for name, (summary, _) in COMMANDS.items():
        assert name in out and summary.split(":")[0] in " ".join(out.split())
    code, out, _ = run(["up", "--help"], capsys)
    assert code == 0 and "TOUCHPATH_REDIS_URL" in out and "``" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert (code, out.strip()) == (0, f"touchpath {metadata.version('touchpath')}")


def test_check_passes_with_reachable_dependencies(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bootstrap: str,
    redis_url: str,
) -> None:
    monkeypatch.setenv("TOUCHPATH_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("TOUCHPATH_REDIS_URL", redis_url)
    code, out, err = run(["check"], capsys)
    assert (code, err) == (0, "")
    assert f"kafka: {bootstrap} answers" in out and f"redis: {redis_url} answers" in out


def test_check_notes_a_redis_below_the_stores_encodings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bootstrap: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp_path)]
    default = spawn("redis-default", argv, port, tmp_path / "redis.log")
    try:
        monkeypatch.setenv("TOUCHPATH_KAFKA_BOOTSTRAP", bootstrap)
        monkeypatch.setenv("TOUCHPATH_REDIS_URL", f"redis://127.0.0.1:{port}/0")
        code, out, err = run(["check"], capsys)
    finally:
        default.stop()
    assert (code, err) == (0, "")  # it works, only less compactly
    notes = [line for line in out.splitlines() if "redis: note:" in line]
    assert len(notes) == 2 and all("is 64" in line for line in notes), out


def test_check_names_each_problem_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("stages: [lead]\nrules: [{stage: nowhere, when: {event: X}}]\n")
    monkeypatch.setenv("TOUCHPATH_RULES_FILE", str(rules))
    monkeypatch.setenv("TOUCHPATH_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("TOUCHPATH_REDIS_URL", f"redis://:secret@127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("TOUCHPATH_COLECTOR_PORT", "9000")
    code, _, err = run(["check"], capsys)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 4, err
    assert lines[0] == (
        "unknown variable TOUCHPATH_COLECTOR_PORT is ignored; "
        "did you mean TOUCHPATH_COLLECTOR_PORT?"
    )
    assert lines[1].startswith("TOUCHPATH_RULES_FILE: ") and "nowhere" in lines[1]
    assert lines[2].startswith("TOUCHPATH_KAFKA_BOOTSTRAP: ") and "does not answer" in lines[2]
    assert lines[3].startswith("TOUCHPATH_REDIS_URL: ") and "secret" not in lines[3]


def test_check_lists_every_invalid_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOUCHPATH_IDENTITY_PRIORITY", "email,bogus")
    monkeypatch.setenv("TOUCHPATH_API_PORT", "99999")
    code, _, err = run(["check"], capsys)
    assert code == 1 and len(err.splitlines()) == 2, err
    assert "TOUCHPATH_API_PORT" in err
    assert "TOUCHPATH_IDENTITY_PRIORITY: unknown identifier kind(s) ['bogus']" in err


def test_unknown_variables_are_warned_about_and_a_bad_priority_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    links = ["email-links", "--campaign", "c", "--message", "m", "--recipient", "r@x.io"]
    monkeypatch.setenv("TOUCHPATH_COLECTOR_PORT", "9000")
    _, _, err = run(links, capsys)
    assert "did you mean TOUCHPATH_COLLECTOR_PORT?" in err
    monkeypatch.setenv("TOUCHPATH_IDENTITY_PRIORITY", "email,bogus")
    code, _, err = run(links, capsys)
    assert code == 2 and "TOUCHPATH_IDENTITY_PRIORITY: unknown identifier kind(s)" in err


def test_collector_without_write_keys_says_so_at_start(
    module_env: dict[str, str], run_dir: Path
) -> None:
    env = {**module_env, "TOUCHPATH_WRITE_KEYS": "", "TOUCHPATH_LOG_LEVEL": "INFO"}
    child = start_service("collector", env, run_dir)
    try:
        assert child.log_path is not None
        log = child.log_path
        wait_for(lambda: "no write keys configured" in log.read_text())
        assert "TOUCHPATH_WRITE_KEYS" in log.read_text()
    finally:
        child.stop()
