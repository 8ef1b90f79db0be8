"""One webhook delivery attempt over HTTP: only to allowed addresses, within a total deadline,
reading at most :data:`MAX_RESPONSE_BYTES` of the answer.

The host of the URL is resolved, every address is checked (:mod:`touchpath.destinations`)
and the connection is made to the checked address itself, in the same step: a name cannot
resolve to a public address for the check and to an internal one for the connection (no
DNS-rebinding window). The ``Host`` header and TLS (SNI, certificate) keep the URL's name.
Redirects are not followed, proxies from the environment are not used.

An attempt ends with ``None`` (a 2xx answer) or a coarse reason, the only thing stored in
the dead letters: ``timeout``, ``refused`` (no connection: name not found, refused, reset),
``bad_response`` (not HTTP), ``blocked_destination``, ``http_3xx``, ``http_4xx``, ``http_5xx``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from touchpath.destinations import Network, blocked

MAX_RESPONSE_BYTES = 4096  # of a receiver's answer body; the rest is never read
BLOCKED = "blocked_destination"


class BlockedDestination(Exception):
    """Every address the host resolves to is refused."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to exactly the checked address."""

    def __init__(self, allowed: tuple[Network, ...]) -> None:
        self.allowed = allowed
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._allowed_addresses(host, port)
        failure: Exception = httpcore.ConnectError("no address")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # the next address of the name, if any
                failure = exc
        raise failure

    async def _allowed_addresses(self, host: str, port: int) -> list[str]:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        allowed = [a for a in addresses if not blocked(ipaddress.ip_address(a), self.allowed)]
        if not allowed:
            raise BlockedDestination(host)
        return allowed

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination(path)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Deliverer:
    """POSTs deliveries through one connection pool (keep-alive per receiver)."""

    def __init__(
        self, allowed: tuple[Network, ...], deadline_s: float, max_connections: int
    ) -> None:
        self.deadline_s = deadline_s
        self.pool = httpcore.AsyncConnectionPool(
            max_connections=max_connections,
            keepalive_expiry=30,
            network_backend=PinnedBackend(allowed),
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> str | None:
        """None when the receiver answered 2xx within the deadline, else the reason."""
        try:
            async with asyncio.timeout(self.deadline_s):
                return _outcome(await self._send(url, body, headers))
        except TimeoutError:
            return "timeout"
        except BlockedDestination:
            return BLOCKED
        except httpcore.TimeoutException:
            return "timeout"
        except (httpcore.ConnectError, httpx.InvalidURL, httpcore.UnsupportedProtocol):
            return "refused"
        except (httpcore.ProtocolError, httpcore.NetworkError):
            return "bad_response"

    async def _send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The status of the answer, after reading at most MAX_RESPONSE_BYTES of its body."""
        parsed = httpx.URL(url)
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        sent = [(b"Host", parsed.netloc), *((k.encode(), v.encode()) for k, v in headers.items())]
        async with self.pool.stream("POST", target, headers=sent, content=body) as answer:
            read = 0
            async for chunk in answer.aiter_stream():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            return answer.status

    async def aclose(self) -> None:
        await self.pool.aclose()


def _outcome(status: int) -> str | None:
    return None if 200 <= status < 300 else f"http_{status // 100}xx"
