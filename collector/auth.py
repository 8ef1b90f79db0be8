"""Write-key auth as Segment does it: HTTP Basic username, or ``writeKey`` in the body."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from infra.problems import Problem
from touchpath.secrets import lookup_secret
from touchpath.settings import WriteKeySource


def write_key_of(request: Request, body: object) -> str | None:
    """The write key a request carries, from the Authorization header or the body."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return str(body["writeKey"])
    return None


def authenticate(request: Request, body: object, keys: dict[str, WriteKeySource]) -> WriteKeySource:
    """The source a valid write key stands for; 401 otherwise."""
    source = lookup_secret(write_key_of(request, body), keys)
    if source is None:
        raise Problem(
            401,
            "Unauthorized",
            "missing or unknown write key: send it as the HTTP Basic username "
            "(empty password) or as writeKey in the body",
            headers={"WWW-Authenticate": 'Basic realm="touchpath"'},
        )
    return source
