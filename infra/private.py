"""Private at rest: the data dir holds personal data (Redis AOF, broker segments, logs) and
credentials, so everything in it is created for the owner only — directories 0700, files
0600 — from the first byte: ``touchpath up`` sets its umask to 077 before anything is
written, every child process (redis-server, SeaweedFS, tansu, the services) is started with
that umask, and files with secrets are written atomically with their final mode (never
created readable and chmod-ed after)."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """Every file and directory this process (and its children) creates is owner-only."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) owner-only; a data dir left by an older version, created
    with wider modes, is tightened once, with everything in it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        _tighten(path)
    return path


def _tighten(root: Path) -> None:
    root.chmod(0o700)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)


def open_private_log(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, mode 0600 from creation (a temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
