"""One delivery attempt: the SSRF guard, the outcome of an answer and the deadline, against a
small HTTP server of the test's own on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dispatcher.delivery import BLOCKED, MAX_RESPONSE_BYTES, Deliverer
from touchpath.destinations import parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")
Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answering(status: int, body: bytes = b"", delay_s: float = 0.0) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay_s)
        head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        writer.write(head + body)
        await writer.drain()
        writer.close()

    return answer


async def post_to(answer: Answer, allowed: tuple = LOOPBACK, deadline_s: float = 5.0) -> str | None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    deliverer = Deliverer(allowed, deadline_s, 4)
    try:
        async with server:
            return await deliverer.post(f"http://127.0.0.1:{port}/hook", b"{}", {"x": "1"})
    finally:
        await deliverer.aclose()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, None), (204, None), (301, "http_3xx"), (410, "http_4xx"), (503, "http_5xx")],
)
def test_the_outcome_is_the_answers_class(status: int, outcome: str | None) -> None:
    assert asyncio.run(post_to(answering(status))) == outcome


def test_loopback_is_blocked_unless_allowed() -> None:
    assert asyncio.run(post_to(answering(200), allowed=())) == BLOCKED


@pytest.mark.parametrize("url", ["http://localhost:9/hook", "http://[::1]:9/hook"])
def test_names_are_checked_after_resolution(url: str) -> None:
    async def post() -> str | None:
        deliverer = Deliverer((), 5.0, 1)
        try:
            return await deliverer.post(url, b"{}", {})
        finally:
            await deliverer.aclose()

    assert asyncio.run(post()) == BLOCKED


def test_a_slow_receiver_times_out_at_the_deadline() -> None:
    assert asyncio.run(post_to(answering(200, delay_s=2.0), deadline_s=0.2)) == "timeout"


def test_nobody_listening_is_refused() -> None:
    async def post() -> str | None:
        server = await asyncio.start_server(answering(200), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        deliverer = Deliverer(LOOPBACK, 5.0, 1)
        try:
            return await deliverer.post(f"http://127.0.0.1:{port}/", b"{}", {})
        finally:
            await deliverer.aclose()

    assert asyncio.run(post()) == "refused"


def test_not_http_is_a_bad_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        await writer.drain()
        writer.close()

    assert asyncio.run(post_to(garbage)) == "bad_response"


def test_an_answer_is_read_only_up_to_the_bound() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n")
        writer.write(b"x" * MAX_RESPONSE_BYTES * 4)  # then nothing more: reading on would wait
        await writer.drain()
        await asyncio.sleep(3)

    assert asyncio.run(post_to(endless, deadline_s=2.0)) is None
