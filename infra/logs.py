"""Structured JSON logs on stderr, one object per line; secrets are never passed to loggers."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from importlib import metadata

import orjson

#: The id of the HTTP request being served, added to every log line written while serving it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with time, level, logger, message and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            body["request_id"] = rid
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # kafka-python logs every failed connection attempt (several a second, as errors); the
    # services say once per retry interval that Kafka is unreachable instead
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


def started_line(service: str, host: str, port: int, **dependencies: object) -> None:
    """The one start-up line of a service: its version, address and dependencies."""
    version = package_version()
    logging.getLogger(service).info(
        f"{service} {version} listening on http://{host}:{port}",
        extra={"version": version, "address": f"{host}:{port}", **dependencies},
    )


def package_version() -> str:
    """The installed touchpath package's version."""
    try:
        return metadata.version("touchpath")
    except metadata.PackageNotFoundError:
        return "unknown"
