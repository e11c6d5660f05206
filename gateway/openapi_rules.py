"""protovalidate rules → JSON Schema keywords, for the OpenAPI generator.

Only what JSON Schema can say exactly is translated. CEL rules (a field's or a message's) cannot be
translated in general, so their messages are listed in the description instead ("Also enforced:").
proto3 fields without presence are never absent on the wire: an omitted field is its zero value,
and protovalidate checks that value. So a field whose rules reject the zero value is `required`.
"""

from __future__ import annotations

import re
from typing import Any

from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

# protovalidate's well-known string rules with an exact JSON Schema format.
_STRING_FORMATS = {
    "email": "email",
    "hostname": "hostname",
    "ipv4": "ipv4",
    "ipv6": "ipv6",
    "uri": "uri",
    "uri_ref": "uri-reference",
    "uuid": "uuid",
}
_NUMERIC_BOUNDS = (
    ("gt", "exclusiveMinimum"),
    ("gte", "minimum"),
    ("lt", "exclusiveMaximum"),
    ("lte", "maximum"),
)
_IGNORED_WHEN_ZERO = (validate_pb2.IGNORE_IF_ZERO_VALUE, validate_pb2.IGNORE_ALWAYS)


def rules_of(field: FieldDescriptor) -> validate_pb2.FieldRules:
    options = field.GetOptions()
    if options.HasExtension(validate_pb2.field):
        return options.Extensions[validate_pb2.field]
    return validate_pb2.FieldRules()


def _set(message: Any, name: str) -> bool:
    try:
        return bool(message.HasField(name))
    except ValueError:  # a repeated or non-optional rule field
        return False


def string_keywords(rules: validate_pb2.StringRules) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    exact = rules.len if _set(rules, "len") else None
    if exact is not None:
        schema["minLength"] = schema["maxLength"] = exact
    if _set(rules, "min_len"):
        schema["minLength"] = rules.min_len
    if _set(rules, "max_len"):
        schema["maxLength"] = rules.max_len
    patterns: list[str] = []
    if _set(rules, "pattern"):
        patterns.append(rules.pattern)
    if _set(rules, "prefix"):
        patterns.append("^" + re.escape(rules.prefix))
    if _set(rules, "suffix"):
        patterns.append(re.escape(rules.suffix) + "$")
    if _set(rules, "contains"):
        patterns.append(re.escape(rules.contains))
    if len(patterns) == 1:
        schema["pattern"] = patterns[0]
    elif patterns:
        schema["allOf"] = [{"pattern": p} for p in patterns]
    if _set(rules, "const"):
        schema["const"] = rules.const
    allowed = list(getattr(rules, "in"))
    if allowed:
        schema["enum"] = allowed
    if rules.not_in:
        schema["not"] = {"enum": list(rules.not_in)}
    well_known = rules.WhichOneof("well_known")
    if well_known in _STRING_FORMATS and getattr(rules, well_known):
        schema["format"] = _STRING_FORMATS[well_known]
    return schema


def numeric_keywords(rules: validate_pb2.FieldRules) -> dict[str, Any]:
    which = rules.WhichOneof("type")
    if which is None:
        return {}
    numeric = getattr(rules, which)
    found: dict[str, Any] = {}
    for rule, keyword in _NUMERIC_BOUNDS:
        if _set(numeric, rule):
            found[keyword] = getattr(numeric, rule)
    if _set(numeric, "const"):
        found["const"] = numeric.const
    allowed = list(getattr(numeric, "in", ()))
    if allowed:
        found["enum"] = allowed
    if list(getattr(numeric, "not_in", ())):
        found["not"] = {"enum": list(numeric.not_in)}
    return found


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def rejects_zero(field: FieldDescriptor, rules: validate_pb2.FieldRules) -> bool:
    """True when an omitted field (its zero value) breaks the field's rules: it is required."""
    if rules.ignore in _IGNORED_WHEN_ZERO:
        return False
    if rules.required:
        return True
    if _is_map(field):
        return rules.map.min_pairs > 0
    if field.is_repeated:
        return rules.repeated.min_items > 0
    if field.has_presence:  # absent means unset, and unset fields are not checked
        return False
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string_rejects_empty(rules.string)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return rules.bytes.min_len > 0 or (_set(rules.bytes, "len") and rules.bytes.len > 0)
    if field.type == FieldDescriptor.TYPE_ENUM:
        allowed = list(getattr(rules.enum, "in"))
        const = _set(rules.enum, "const") and rules.enum.const != 0
        return 0 in rules.enum.not_in or bool(allowed and 0 not in allowed) or const
    if field.cpp_type in (FieldDescriptor.CPPTYPE_BOOL, FieldDescriptor.CPPTYPE_MESSAGE):
        return False
    return _number_rejects_zero(rules)


def _string_rejects_empty(rules: validate_pb2.StringRules) -> bool:
    if rules.min_len > 0 or (_set(rules, "len") and rules.len > 0):
        return True
    if _set(rules, "pattern") and re.search(rules.pattern, "") is None:
        return True
    if _set(rules, "const") and rules.const != "":
        return True
    allowed = list(getattr(rules, "in"))
    if (allowed and "" not in allowed) or "" in rules.not_in:
        return True
    if _set(rules, "prefix") or _set(rules, "suffix") or _set(rules, "contains"):
        return bool(rules.prefix or rules.suffix or rules.contains)
    well_known = rules.WhichOneof("well_known")
    return well_known is not None and bool(getattr(rules, well_known))


def _number_rejects_zero(rules: validate_pb2.FieldRules) -> bool:
    keywords = numeric_keywords(rules)
    if keywords.get("exclusiveMinimum", -1) >= 0 or keywords.get("minimum", 0) > 0:
        return True
    if keywords.get("exclusiveMaximum", 1) <= 0 or keywords.get("maximum", 0) < 0:
        return True
    if "const" in keywords and keywords["const"] != 0:
        return True
    if "enum" in keywords and 0 not in keywords["enum"]:
        return True
    return 0 in keywords.get("not", {}).get("enum", [])


def non_zero(field: FieldDescriptor, schema: dict[str, Any]) -> dict[str, Any]:
    """`required: true` on a field without presence also forbids its zero value."""
    if field.type == FieldDescriptor.TYPE_STRING or field.type == FieldDescriptor.TYPE_BYTES:
        return {**schema, "minLength": max(1, schema.get("minLength", 0))}
    if field.type == FieldDescriptor.TYPE_BOOL:
        return {**schema, "const": True}
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE or field.type == FieldDescriptor.TYPE_ENUM:
        return schema  # enums: handled by the caller, which knows the value names
    return {**schema, "not": {"enum": [0, "0"]}}


def cel_notes(rules: validate_pb2.FieldRules) -> list[str]:
    """The messages of a field's CEL rules (JSON Schema cannot check them)."""
    return [c.message or c.expression for c in rules.cel]


def message_cel_notes(descriptor: Descriptor) -> list[str]:
    options = descriptor.GetOptions()
    if not options.HasExtension(validate_pb2.message):
        return []
    return [c.message or c.expression for c in options.Extensions[validate_pb2.message].cel]


def with_notes(description: str, notes: list[str]) -> str:
    if not notes:
        return description
    also = "Also enforced (not expressible in JSON Schema): " + "; ".join(notes) + "."
    return f"{description} {also}" if description else also


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """proto3 JSON reads null as "the default value": an optional property may be null.

    Said with a `type` list where the schema has one, so the shape stays flat (schemathesis
    infers links between operations from the response properties, which `anyOf` would hide).
    A message ($ref) field is left as is: null there means "unset", which the description says.
    """
    kind = schema.get("type")
    if kind is None:
        if "anyOf" in schema:  # a 64-bit integer: number or decimal string
            return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
        return schema
    kinds = kind if isinstance(kind, list) else [kind]
    widened = {**schema, "type": [*kinds, "null"]}
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    if "const" in schema:
        widened["enum"] = [schema["const"], None]
        del widened["const"]
    return widened


def integer_schema(fmt: str, low: int, high: int, rules: dict[str, Any]) -> dict[str, Any]:
    """An integer within its type's range and the rules' bounds; 64-bit ones also as strings.

    proto3 JSON writes 64-bit integers as decimal strings (JS numbers lose precision) and reads
    both forms, so the string form gets a pattern matching exactly the allowed decimal range.
    """
    number: dict[str, Any] = {"type": "integer", "format": fmt, "minimum": low, "maximum": high}
    bounds = {keyword for _, keyword in _NUMERIC_BOUNDS}
    number.update({k: v for k, v in rules.items() if k in bounds})
    others = {k: v for k, v in rules.items() if k not in bounds}
    if fmt not in ("int64", "uint64"):
        return {**number, **others}
    if "exclusiveMinimum" in rules:
        low = max(low, int(rules["exclusiveMinimum"]) + 1)
    low = max(low, int(rules.get("minimum", low)))
    if "exclusiveMaximum" in rules:
        high = min(high, int(rules["exclusiveMaximum"]) - 1)
    high = min(high, int(rules.get("maximum", high)))
    text = {"type": "string", "pattern": decimal_range_pattern(low, high)}
    return {"anyOf": [number, text], **others}


def decimal_range_pattern(low: int, high: int) -> str:
    """A regex matching exactly the decimal integers from low to high (no leading zeros)."""
    parts: list[str] = []
    if low < 0:
        negative = _natural_range(max(1, -high), -low) if high < 0 else _natural_range(1, -low)
        parts += ["-" + part for part in negative]
    if high >= 0:
        parts += _natural_range(max(0, low), high)
    return "^(?:" + "|".join(parts) + ")$"


def _natural_range(low: int, high: int) -> list[str]:
    """Alternatives matching low..high (0 <= low <= high), split by digit count."""
    parts: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        start, end = max(low, first), min(high, 10**digits - 1)
        while start <= end:
            step = 1
            while (
                step * 10 < 10**digits and start % (step * 10) == 0 and start + step * 10 - 1 <= end
            ):
                step *= 10
            blocks = 1
            while (start // step) % 10 + blocks < 10 and start + (blocks + 1) * step - 1 <= end:
                blocks += 1
            stop = start + blocks * step - 1
            parts.append(_block(start, stop, step))
            start = stop + 1
    return parts


def _block(start: int, stop: int, step: int) -> str:
    tail = len(str(step)) - 1
    head = str(start)[: len(str(start)) - tail]
    first, last = head[-1], str(stop)[len(str(stop)) - tail - 1]
    digit = first if first == last else f"[{first}-{last}]"
    return head[:-1] + digit + ("[0-9]" + (f"{{{tail}}}" if tail > 1 else "") if tail else "")
