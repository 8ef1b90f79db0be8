"""The store's Lua scripts (``store/scripts/*.lua``), read from the installed package.

A script may start with Redis's ``#!lua`` line (flags); function chunks a script needs
(e.g. ``remove_customer``) are put in front of its body, after that line.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def source(name: str, *chunks: str) -> str:
    """The Lua of the script ``name`` (``store/scripts/<name>.lua``) with the function
    ``chunks`` (each ``store/scripts/<chunk>.lua``) in front of its body."""
    return include(_read(name), *chunks)


def include(script: str, *chunks: str) -> str:
    """``script`` (Lua source) with the function ``chunks`` in front of its body, after its
    ``#!`` line if it has one."""
    if not chunks:
        return script
    head, body = "", script
    if script.startswith("#!"):
        first, _, body = script.partition("\n")
        head = first + "\n"
    return head + "".join(_read(chunk) for chunk in chunks) + body


def _read(name: str) -> str:
    return resources.files("store").joinpath("scripts", f"{name}.lua").read_text()
