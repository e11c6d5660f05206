"""A typed JSON codec for the order aggregate and saga commands (frozen dataclasses, enums,
Decimal, datetime, tuples, dicts, sets, optionals).

Why JSON driven by the type hints, not pickle: the stored document stays readable in SQL tools
and survives class moves, and decoding checks shapes instead of executing anything.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any


def to_plain(value: Any) -> Any:
    """A JSON-ready form of `value` (no type tags: decoding is driven by the declared types)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return [[to_plain(k), to_plain(v)] for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(to_plain(v) for v in value)
    return value


def from_plain(hint: Any, data: Any) -> Any:
    """Rebuild a value of type `hint` from `to_plain` output."""
    if data is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_plain(inner[0], data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in data)
        return tuple(from_plain(a, v) for a, v in zip(args, data, strict=True))
    if origin is list:
        return [from_plain(args[0], v) for v in data]
    if origin in (set, frozenset):
        return origin(from_plain(args[0], v) for v in data)
    if origin is dict or origin is typing.Mapping:
        return {from_plain(args[0], k): from_plain(args[1], v) for k, v in data}
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            hints = _hints(hint)
            return hint(**{name: from_plain(hints[name], value) for name, value in data.items()})
        if issubclass(hint, enum.Enum):
            return hint[data]
        if hint is Decimal:
            return Decimal(data)
        if hint is datetime:
            return datetime.fromtimestamp(data, UTC)
        if hint in (int, str, float, bool):
            return hint(data)
    if hint is Any:
        return data
    raise TypeError(f"cannot decode {hint!r}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def dumps(value: Any) -> str:
    return json.dumps(to_plain(value), separators=(",", ":"))


def loads(cls: type, text: str) -> Any:
    return from_plain(cls, json.loads(text))
