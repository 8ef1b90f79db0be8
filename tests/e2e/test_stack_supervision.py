"""`touchpath up` supervises: a SIGKILLed child comes back, nothing accepted is lost (issue 18)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from infra.embedded import free_port
from tests.e2e.conftest import wait_for
from tests.e2e.test_stack import children_of_data_dir, stack_env, stack_up


def child_pid(up_pid: str, service: str) -> int | None:
    """The pid of ``touchpath <service>`` that the ``up`` process started, if it runs."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        pid, ppid, args = line.split(maxsplit=2)
        if ppid == up_pid and args.endswith(f"launcher.cli {service}"):
            return int(pid)
    return None


class Sender:
    """Posts one event per distinct user to the collector, remembering those accepted (200)."""

    def __init__(self, collector: str, write_key: str) -> None:
        self.collector = collector
        self.write_key = write_key
        self.accepted: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(auth=(self.write_key, ""), timeout=5) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                user = f"flow-{n}"
                try:
                    answer = client.post(
                        f"{self.collector}/v1/track", json={"userId": user, "event": "Signed Up"}
                    )
                except httpx.HTTPError:
                    continue  # the collector is down: not accepted
                if answer.status_code == 200:
                    self.accepted.append(user)


@contextmanager
def sending(collector: str, write_key: str) -> Iterator[Sender]:
    sender = Sender(collector, write_key)
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    try:
        yield sender
    finally:
        sender.stop.set()
        thread.join(10)


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def kill_and_wait_for_return(up_pid: str, service: str) -> None:
    old = wait_for(lambda: child_pid(up_pid, service))
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (child_pid(up_pid, service) or old) != old, 60)


def test_sigkilled_children_come_back_and_every_accepted_event_is_processed(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    collector = f"http://127.0.0.1:{ports['collector']}"
    with stack_up(data_dir, ports, "--ephemeral") as banner:
        metrics = httpx.get(f"http://127.0.0.1:{ports['processor']}/metrics").text
        held = re.search(r"^touchpath_processor_partitions_assigned (\S+)$", metrics, re.M)
        assert held and float(held.group(1)) > 0, "ready before the processor held partitions"
        store = redis.Redis.from_url(banner["redis"].split()[0], decode_responses=True)
        with sending(collector, banner["write key"]) as sender:
            wait_for(lambda: len(sender.accepted) >= 20)
            before = len(sender.accepted)
            kill_and_wait_for_return(banner["pid"], "processor")
            assert len(sender.accepted) > before, "the collector accepted while it restarted"
            kill_and_wait_for_return(banner["pid"], "collector")
            wait_for(lambda: answers(f"{collector}/healthz"), 30)
            for service in ("api", "webhooks"):  # the readers: nothing accepted depends on them
                kill_and_wait_for_return(banner["pid"], service)
                wait_for(lambda s=service: answers(f"http://127.0.0.1:{ports[s]}/healthz"), 30)
            after = len(sender.accepted)
            wait_for(lambda: len(sender.accepted) >= after + 20, 30)
        accepted = list(sender.accepted)

        def missing() -> list[str]:
            found = store.mget([f"tp:idc:user_id:{user}" for user in accepted])
            return [user for user, cid in zip(accepted, found, strict=True) if cid is None]

        wait_for(lambda: not missing(), 60)
    said = banner["output after ready"]
    assert "processor exited with -9" in said and "processor restarted" in said, said
    assert "collector exited with -9" in said and "collector restarted" in said, said
    for service in ("api", "webhooks"):
        assert f"{service} exited with -9" in said and f"{service} restarted" in said, said


def test_up_gives_up_on_a_child_that_keeps_crashing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("collector", "api", "processor", "webhooks")}
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "up", "--ephemeral"],
        env={**stack_env(data_dir, ports), "TOUCHPATH_UP_MAX_CRASHES": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "ready":
            break
    up_pid = str(process.pid)
    try:
        kill_and_wait_for_return(up_pid, "webhooks")
        os.kill(wait_for(lambda: child_pid(up_pid, "webhooks")), signal.SIGKILL)
        rest = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, rest
    assert "touchpath up: webhooks " in rest, rest
    assert "it crashed 2 times within 60 s, giving up; last log lines" in rest, rest
    assert rest.rstrip().endswith("stopped"), rest
    assert children_of_data_dir(data_dir) == []
