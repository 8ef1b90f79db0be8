"""Read a request body within the size limit: plain, gzip, or text/plain (sendBeacon) JSON."""

from __future__ import annotations

import zlib

import orjson
from starlette.requests import Request

from infra.problems import Problem


class BodyError(Problem):
    """The body cannot be read as JSON; ``code`` labels the reason in metrics."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        title = "Bad request body" if status == 400 else "Payload too large"
        super().__init__(status, title, detail, code=code)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw (still encoded) body; 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyError(
            413, f"request body is {declared} bytes; the limit is {max_bytes}", "too_large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(
                413, f"request body exceeds the limit of {max_bytes} bytes", "too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> tuple[object, int]:
    """Decompress (gzip) and parse JSON: (value, decoded size); BodyError otherwise."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(400, f"unsupported Content-Encoding {encoding!r}; use gzip", "bad_gzip")
    data = _decompress(raw, max_bytes) if encoding == "gzip" else raw
    if not data.strip():
        raise BodyError(400, "request body is empty", "empty_body")
    try:
        return orjson.loads(data), len(data)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"request body is not valid JSON (UTF-8): {exc}", "bad_json") from None


def _decompress(raw: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid gzip: {exc}", "bad_gzip") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise BodyError(
            413, f"decompressed body exceeds the limit of {max_bytes} bytes", "too_large"
        )
    if not inflater.eof:
        raise BodyError(400, "gzip body is truncated", "bad_gzip")
    return data
