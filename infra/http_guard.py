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
        self._head_bytes = 0
        self._head_done = False
        self._refused = False  # a head too large: answered 431, the rest is ignored

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._head_done, self._refused = 0, False, False
        if self._deadline is None:
            self._arm(self._head_s)

    def on_url(self, url: bytes) -> None:
        if self._counted(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._counted(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._head_done = True
        self._arm(self._body_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def _counted(self, size: int) -> bool:
        """Add to the head's size; False (and a 431) once it is over the bound."""
        self._head_bytes += size
        if self._head_bytes > self._max_head and not self._refused:
            self._refused = True
            self._close(_431)
        return not self._refused

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        started = self._head_done and self.cycle is not None and self.cycle.response_started
        self._close(None if started else _408)

    def _close(self, answer: bytes | None) -> None:
        if self.transport.is_closing():
            return
        if answer is not None:
            self.transport.write(answer)
        self.transport.close()
