"""protovalidate, turned into field paths a caller can act on.

Requests are validated against the rules in the contracts. The gRPC interceptor turns these
violations into google.rpc.BadRequest field violations and the gateway into problem+json, so
both speak the same paths, e.g. "order.lines[0].quantity".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import protovalidate
from google.protobuf.message import Message

_validator = protovalidate.Validator()


@dataclass(frozen=True)
class FieldViolation:
    """One broken rule: where, which rule, and the message a person can read."""

    field: str
    rule_id: str
    description: str


def field_path(violation: protovalidate.Violation) -> str:
    """The dotted path of a violation, with [index] or [key] subscripts; "" for message rules."""
    path = violation.proto.field
    if path is None:
        return ""
    parts: list[str] = []
    for element in path.elements:
        part = str(element.field_name)
        subscript: Any = element.subscript
        if subscript is not None:
            value = subscript.value
            part += f"[{value}]" if subscript.field == "index" else f"[{value!r}]"
        parts.append(part)
    return ".".join(parts)


def violations_of(message: Message) -> list[FieldViolation]:
    """Every rule the message breaks; empty when it is valid."""
    return [
        FieldViolation(
            field=field_path(v),
            rule_id=str(v.proto.rule_id),
            description=str(v.proto.message),
        )
        for v in _validator.collect_violations(message)
    ]
