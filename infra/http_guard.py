"""Slow clients: deadlines for reading a request's head and body, and a bound on the head.

uvicorn closes a connection idle *between* requests (``timeout_keep_alive``) but waits forever
for a request that trickles in: a client that connects and sends nothing, or a header line a
byte at a time, or a body shorter than its ``Content-Length``, holds a connection (and, for a
body, a request in the app) for as long as it likes. :class:`GuardedHttpTools` is uvicorn's
httptools protocol with two deadlines: the head (request line and headers) must arrive within
``TOUCHPATH_HTTP_HEADER_TIMEOUT_S`` of the connection opening or the request's first byte, the
body within ``TOUCHPATH_HTTP_BODY_TIMEOUT_S`` of the head; past either the connection is
closed (408 if no response started). A head over ``TOUCHPATH_HTTP_MAX_HEADER_BYTES`` is
answered 431. Responses, however long (a Server-Sent Events stream), are not limited.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from touchpath.settings import Settings, load_settings

_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


@cache
def _settings() -> Settings:
    """The worker's settings (uvicorn starts workers afresh: the environment carries them)."""
    return load_settings()


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for the head and the body of a request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self._head_s = settings.http_header_timeout_s
        self._body_s = settings.http_body_timeout_s
        self._max_head = settings.http_max_header_bytes
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = 0  # None once the head is complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self._close(_431)
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._deadline is None:
            self._arm(self._head_s)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._arm(self._body_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        head_done = self._head_bytes is None
        started = head_done and self.cycle is not None and self.cycle.response_started
        self._close(None if started else _408)

    def _close(self, answer: bytes | None) -> None:
        if self.transport.is_closing():
            return
        if answer is not None:
            self.transport.write(answer)
        self.transport.close()
