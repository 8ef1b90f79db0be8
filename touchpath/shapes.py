"""Fast shape checks of decoded JSON (pure): ``isinstance(value, Mapping)`` costs an abstract
base class look-up, while JSON values are plain dicts, lists, strings, numbers or None."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

_PLAIN = frozenset({str, int, float, bool, list, type(None)})


def is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, answered without the look-up for JSON's own types."""
    kind = type(value)
    if kind is dict:
        return True
    if kind in _PLAIN:
        return False
    return isinstance(value, Mapping)
