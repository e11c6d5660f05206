"""JSON and query strings → request messages, with a field path for every mistake.

google.protobuf.json_format does the conversion, but its errors are prose. So the input is first
walked against the message descriptor here; each problem gets the same dotted path protovalidate
uses ("order.lines[0].quantity"), and only then is json_format asked to build the message.
Both the proto names and the lowerCamelCase JSON names are accepted, as proto3 JSON requires.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

# Well-known types have their own JSON forms (strings, any JSON value); json_format checks them.
_WELL_KNOWN_PREFIX = "google.protobuf."
_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Violation:
    """One input problem: where (a field path, "" for the whole body) and what is wrong."""

    field: str
    description: str


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_named(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    """The field whose proto name or JSON (lowerCamelCase) name is `key`."""
    field = descriptor.fields_by_name.get(key)
    if field is not None:
        return field
    return _fields_by_json_name(descriptor).get(key)


def message_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field (typed: the descriptor API says "maybe None")."""
    assert field.message_type is not None, field.full_name
    return field.message_type


def enum_of(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None, field.full_name
    return field.enum_type


def check_message(value: Any, descriptor: Descriptor, path: str) -> list[Violation]:
    """Every structural or type problem of a JSON value meant to become `descriptor`."""
    if descriptor.full_name.startswith(_WELL_KNOWN_PREFIX):
        return _check_well_known(value, descriptor, path)
    if not isinstance(value, dict):
        return [Violation(path, f"must be a JSON object ({descriptor.name})")]
    problems: list[Violation] = []
    seen: dict[str, str] = {}
    for key, item in value.items():
        field = field_named(descriptor, key)
        if field is None:
            problems.append(Violation(join(path, key), "is not a field of " + descriptor.name))
            continue
        where = join(path, field.name)
        if field.name in seen:
            problems.append(Violation(where, f"is given twice ({seen[field.name]!r} and {key!r})"))
            continue
        seen[field.name] = key
        if item is None:
            continue  # proto3 JSON: null means the default value
        problems.extend(check_field(item, field, where))
    return problems


def check_field(value: Any, field: FieldDescriptor, path: str) -> list[Violation]:
    if _is_map(field):
        if not isinstance(value, dict):
            return [Violation(path, "must be a JSON object (a map)")]
        value_field = message_of(field).fields_by_name["value"]
        problems: list[Violation] = []
        for key, item in value.items():
            problems.extend(_check_single(item, value_field, f"{path}[{key!r}]"))
        return problems
    if field.is_repeated:
        if not isinstance(value, list):
            return [Violation(path, "must be a JSON array")]
        problems = []
        for index, item in enumerate(value):
            problems.extend(_check_single(item, field, f"{path}[{index}]"))
        return problems
    return _check_single(value, field, path)


@functools.cache  # asked for every value of every body; the answer never changes
def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).GetOptions().map_entry


def _check_single(value: Any, field: FieldDescriptor, path: str) -> list[Violation]:
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_MESSAGE:
        return check_message(value, message_of(field), path)
    if kind == FieldDescriptor.CPPTYPE_STRING:
        return [] if isinstance(value, str) else [Violation(path, "must be a string")]
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return [] if isinstance(value, bool) else [Violation(path, "must be true or false")]
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        names = [v.name for v in enum_of(field).values]
        if isinstance(value, str) and value in names:
            return []
        if isinstance(value, int) and not isinstance(value, bool):
            return []
        return [Violation(path, "must be one of " + ", ".join(names))]
    if kind in _INT_RANGES:
        return _check_integer(value, _INT_RANGES[kind], path)
    return _check_float(value, path)


def _check_integer(value: Any, bounds: tuple[int, int], path: str) -> list[Violation]:
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            number = None
    if number is None:
        return [Violation(path, "must be an integer")]
    low, high = bounds
    if not low <= number <= high:
        return [Violation(path, f"must be an integer between {low} and {high}")]
    return []


def _check_float(value: Any, path: str) -> list[Violation]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return []
    if isinstance(value, str):
        if value in ("NaN", "Infinity", "-Infinity"):
            return []
        try:
            if math.isfinite(float(value)):
                return []
        except ValueError:
            pass
    return [Violation(path, "must be a number")]


def _check_well_known(value: Any, descriptor: Descriptor, path: str) -> list[Violation]:
    from google.protobuf import message_factory

    try:
        json_format.ParseDict(value, message_factory.GetMessageClass(descriptor)())
    except (json_format.ParseError, TypeError, ValueError) as error:
        return [Violation(path, f"is not a valid {descriptor.name}: {error}")]
    return []


def scalar_from_text(text: str, field: FieldDescriptor, path: str) -> tuple[Any, list[Violation]]:
    """A query-string or path value converted to the JSON value json_format expects."""
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_MESSAGE:
        if message_of(field).full_name.startswith(_WELL_KNOWN_PREFIX):
            return text, _check_well_known(text, message_of(field), path)
        return None, [Violation(path, "cannot be given in the URL (it is a message)")]
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True, []
        if lowered in ("false", "0"):
            return False, []
        return None, [Violation(path, "must be true or false")]
    if kind == FieldDescriptor.CPPTYPE_ENUM and text.lstrip("-").isdigit():
        return int(text), []
    return text, _check_single(text, field, path)


def parse_into(data: dict[str, Any], message: Message) -> list[Violation]:
    """Fill `message` from checked JSON; a leftover json_format complaint becomes one violation.

    Plain JSON (known fields, no nulls, strings, booleans, integers, enum names, nested objects
    and arrays of them) is set on the message directly, as ParseDict would set it, at a fraction
    of its cost. Anything else, or any doubt, goes to ParseDict itself, from an empty message,
    so its result and its error text are ParseDict's.
    """
    if not message.ListFields():  # from empty only: a fallback can then start over
        try:
            _fill(data, message, 0)
            return []
        except (_NotPlain, ValueError, TypeError):
            message.Clear()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        return [Violation("", str(error).split("\n", 1)[0])]
    return []


class _NotPlain(Exception):
    """The JSON has something `_fill` leaves to ParseDict."""


_MAX_PLAIN_DEPTH = 32  # deeper goes to ParseDict (its recursion limit, its error)
_DIGITS = re.compile(r"-?[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")  # ParseDict rejects unpaired ones: let it decide


def _fill(data: Any, message: Message, depth: int) -> None:
    """What ParseDict does to an empty `message` for plain JSON; raises _NotPlain otherwise."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    if (
        type(data) is not dict
        or depth > _MAX_PLAIN_DEPTH
        or descriptor.full_name.startswith(_WELL_KNOWN_PREFIX)
    ):
        raise _NotPlain
    by_json_name = _fields_by_json_name(descriptor)
    by_name = descriptor.fields_by_name
    seen: set[str] = set()
    for key, value in data.items():
        field = by_json_name.get(key) or by_name.get(key)
        if field is None or value is None or field.containing_oneof is not None:
            raise _NotPlain
        if field.name in seen:
            raise _NotPlain
        seen.add(field.name)
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if _is_map(field):
                raise _NotPlain
            if field.is_repeated:
                if type(value) is not list:
                    raise _NotPlain
                items = getattr(message, field.name)
                for item in value:
                    _fill(item, items.add(), depth + 1)
            else:
                sub_message = getattr(message, field.name)
                sub_message.SetInParent()
                _fill(value, sub_message, depth + 1)
        elif field.is_repeated:
            if type(value) is not list:
                raise _NotPlain
            getattr(message, field.name).extend([_plain_scalar(item, field) for item in value])
        else:
            setattr(message, field.name, _plain_scalar(value, field))


def _plain_scalar(value: Any, field: FieldDescriptor) -> Any:
    """ParseDict's value for a plain scalar (exactly what it would set); else _NotPlain."""
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if (
            field.type == FieldDescriptor.TYPE_STRING
            and type(value) is str
            and (value.isascii() or not _SURROGATE.search(value))
        ):
            return value
    elif kind == FieldDescriptor.CPPTYPE_ENUM:
        if type(value) is str:
            enum_value = enum_of(field).values_by_name.get(value)
            if enum_value is not None:
                return enum_value.number
    elif kind == FieldDescriptor.CPPTYPE_BOOL:
        if type(value) is bool:
            return value
    elif kind in _INT_RANGES:
        number = None
        if type(value) is int:
            number = value
        elif type(value) is str and value.isascii() and _DIGITS.fullmatch(value):
            number = int(value)
        low, high = _INT_RANGES[kind]
        if number is not None and low <= number <= high:
            return number
    raise _NotPlain


@functools.cache
def _fields_by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """As ParseDict looks keys up: by JSON name first (descriptors live as long as the process)."""
    return {field.json_name: field for field in descriptor.fields}
