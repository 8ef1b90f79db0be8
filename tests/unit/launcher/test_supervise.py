"""touchpath up's supervision policy, with fake children and a fake clock (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.embedded import Child
from launcher.supervise import GiveUp, Supervisor


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def child(name: str, pid: int, log_path: Path | None = None) -> Child:
    return Child(name, FakeProcess(pid), 1, log_path)  # type: ignore[arg-type]


def kill(target: Child) -> None:
    target.process.returncode = -9


@pytest.fixture
def clock() -> Clock:
    return Clock()


def supervisor(children: list[Child], clock: Clock, started: list[str]) -> Supervisor:
    def restart(old: Child) -> Child:
        started.append(old.name)
        return child(old.name, old.process.pid + 100, old.log_path)

    return Supervisor(children, restart, ["redis"], max_crashes=5, window_s=60, clock=clock)


def test_a_dead_child_is_restarted_after_a_backoff_and_said(
    clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    children = [child("redis", 1), child("collector", 2), child("processor", 3)]
    started: list[str] = []
    watch = supervisor(children, clock, started)
    kill(children[2])
    watch.check()
    assert started == [] and "processor exited with -9" in capsys.readouterr().err
    clock.now += 0.5
    watch.check()
    assert started == ["processor"] and children[2].process.pid == 103
    assert children[1].process.pid == 2, "the collector keeps running"
    assert "processor restarted (pid 103)" in capsys.readouterr().err


def test_services_wait_for_a_dead_dependency(clock: Clock) -> None:
    children = [child("redis", 1), child("processor", 3)]
    started: list[str] = []
    watch = supervisor(children, clock, started)
    kill(children[0])
    kill(children[1])
    watch.check()
    clock.now += 0.5
    watch.check()
    assert started == ["redis"]
    clock.now += 0.5
    watch.check()
    assert started == ["redis", "processor"]


def test_backoff_doubles_and_the_fifth_crash_in_the_window_gives_up(
    clock: Clock, tmp_path: Path
) -> None:
    log = tmp_path / "processor.log"
    log.write_text("starting\nKafkaError: boom\n")
    children = [child("processor", 3, log)]
    started: list[str] = []
    watch = supervisor(children, clock, started)
    for delay in (0.5, 1.0, 2.0, 4.0):
        kill(children[0])
        watch.check()
        clock.now += delay - 0.01
        watch.check()
        assert len(started) == [0.5, 1.0, 2.0, 4.0].index(delay)
        clock.now += 0.01
        watch.check()
    kill(children[0])
    with pytest.raises(GiveUp, match=r"processor exited with -9; it crashed 5 times within 60 s"):
        watch.check()
    with pytest.raises(GiveUp, match="KafkaError: boom"):
        kill(children[0])
        Supervisor(children, lambda c: c, [], max_crashes=1, clock=clock).check()


def test_crashes_further_apart_than_the_window_never_give_up(clock: Clock) -> None:
    children = [child("api", 2)]
    started: list[str] = []
    watch = supervisor(children, clock, started)
    for _ in range(20):
        kill(children[0])
        watch.check()
        clock.now += 61
        watch.check()
    assert len(started) == 20
