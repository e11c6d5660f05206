"""The generic transcoder: an HTTP request → the annotated RPC's request message → proto3 JSON.

Mapping rules (google.api.http): path variables set the fields they name; with body "*" every
other field comes from the JSON body and no query parameters are allowed; with body "<field>"
that field comes from the body and the remaining fields may come from the query; with no body
every non-path field may come from the query (repeated fields by repeating the parameter).
Server-owned fields (partner_id, set from the API key; idempotency_key, set from the
Idempotency-Key header) are rejected wherever a client sends them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.descriptors import HttpBinding
from gateway.jsonmap import (
    Violation,
    check_field,
    check_message,
    field_named,
    message_of,
    parse_into,
    scalar_from_text,
)
from gateway.problems import bad_request
from gateway.templates import PathTemplate, parse_template
from services.kit.validation import violations_of

# Fields the gateway owns: a client never sets them, the gateway fills them from the API key
# and (on a request that has one) from the Idempotency-Key header.
PARTNER_FIELD = "partner_id"
IDEMPOTENCY_FIELD = "idempotency_key"
SERVER_OWNED_FIELDS = frozenset({PARTNER_FIELD, IDEMPOTENCY_FIELD})
# A signed push's signature headers (IngestWebhookRequest) come from the HTTP headers.
SIGNATURE_HEADERS_FIELD = "signature_headers"
HTTP_BODY = "google.api.HttpBody"


@dataclass(frozen=True)
class RawBody:
    """A request body kept as bytes (for google.api.HttpBody fields: webhooks, non-JSON)."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class Route:
    """One REST operation, derived entirely from an annotated RPC.

    Its derived facts are cached properties: they are read on every request and never change.
    """

    binding: HttpBinding
    template: PathTemplate
    request_class: type[Message]
    response_class: type[Message]

    @cached_property
    def creates(self) -> bool:
        """A POST of a Create* method makes a resource: 201 (AIP-133 naming)."""
        return self.binding.http_method == "POST" and self.binding.method.name.startswith("Create")

    @cached_property
    def success_status(self) -> int:
        return 201 if self.creates else 200

    @cached_property
    def raw_body(self) -> bool:
        """The body field is a google.api.HttpBody: the bytes pass through untouched."""
        field = self.body_field
        return field is not None and (
            field.message_type is not None and message_of(field).full_name == HTTP_BODY
        )

    @cached_property
    def body_field(self) -> FieldDescriptor | None:
        body = self.binding.body
        if body in ("", "*"):
            return None
        return self.binding.method.input_type.fields_by_name[body]

    @cached_property
    def plain_path_fields(self) -> dict[str, str] | None:
        """Path variable -> field name, when every variable names a top-level singular string
        field outside any oneof (a text that is one needs no conversion); else None."""
        fields = self.binding.method.input_type.fields_by_name
        named: dict[str, str] = {}
        for variable in self.template.variables:
            field = fields.get(variable)
            if (
                field is None
                or field.type != FieldDescriptor.TYPE_STRING
                or field.is_repeated
                or field.containing_oneof is not None
            ):
                return None
            named[variable] = field.name
        return named


def build_routes(bindings: Sequence[HttpBinding]) -> list[Route]:
    """Routes for the bindings, most specific template first (verbs before plain variables)."""
    routes = [
        Route(
            binding=b,
            template=parse_template(b.template),
            request_class=message_factory.GetMessageClass(b.method.input_type),
            response_class=message_factory.GetMessageClass(b.method.output_type),
        )
        for b in bindings
    ]
    return sorted(routes, key=lambda r: r.template.specificity)


@functools.lru_cache(maxsize=1024)  # path variables and query keys: few, asked on every request
def _resolve(descriptor: Descriptor, dotted: str) -> tuple[tuple[FieldDescriptor, ...], str] | None:
    """The field chain a dotted name (proto or JSON names) points to, and its proto path.

    Cached, so the chain is a tuple."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        if current is None:
            return None
        field = field_named(current, part)
        if field is None:
            return None
        chain.append(field)
        is_message = field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        current = field.message_type if is_message else None
    return tuple(chain), ".".join(f.name for f in chain)


def _set_path(data: dict[str, Any], chain: Sequence[FieldDescriptor], value: Any) -> None:
    for field in chain[:-1]:
        data = data.setdefault(field.name, {})
    data[chain[-1].name] = value


def _server_owned_in(value: Any, path: str) -> list[Violation]:
    """Server-owned keys anywhere in a JSON body (by proto or JSON name)."""
    found: list[Violation] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = "partner_id" if key in ("partner_id", "partnerId") else key
            where = f"{path}.{name}" if path else name
            if name in SERVER_OWNED_FIELDS:
                found.append(Violation(where, "is set by the server and must not be sent"))
            else:
                found.extend(_server_owned_in(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_server_owned_in(item, f"{path}[{index}]"))
    return found


def build_request(
    route: Route,
    path_values: dict[str, str],
    query: Sequence[tuple[str, str]],
    body: Any | None,
    partner_id: str | None,
    signature_headers: Mapping[str, str] | None = None,
    *,
    rules_hold: bool = False,
) -> Message:
    """The RPC request for one HTTP request; raises a 400 Problem naming each bad field.

    `signature_headers` fill the request's `signature_headers` map (signed pushes), if it has one.
    `rules_hold` says the caller knows the message keeps the contract's rules (`finish_request`).
    """
    message = decode_request(route, path_values, query, body)
    return finish_request(route, message, partner_id, signature_headers, rules_hold=rules_hold)


def decode_request(
    route: Route, path_values: dict[str, str], query: Sequence[tuple[str, str]], body: Any | None
) -> Message:
    """The first half of `build_request`: the message the client sent, server-owned fields
    unset and the contract's rules not yet checked; raises a 400 Problem naming each bad field.
    """
    if isinstance(body, RawBody) and not query:
        plain = _plain_raw_request(route, path_values, body)
        if plain is not None:
            return plain
    descriptor = route.binding.method.input_type
    data: dict[str, Any] = {}
    problems: list[Violation] = []
    bound: set[str] = set()
    for name, text in path_values.items():
        resolved = _resolve(descriptor, name)
        if resolved is None:  # a contract bug; say so rather than guess
            raise bad_request(f"path variable {name} names no field")
        chain, proto_path = resolved
        value, errors = scalar_from_text(text, chain[-1], proto_path)
        problems += errors
        _set_path(data, chain, value)
        bound.add(chain[0].name)
    problems += _query_into(route, query, bound, data)
    problems += _body_into(route, body, bound, data)
    if problems:
        raise bad_request("the request has invalid fields", problems)
    message = route.request_class()
    problems = parse_into(data, message)
    if problems:
        raise bad_request("the request could not be read", problems)
    if isinstance(body, RawBody):
        _set_raw_body(route, message, body)
    return message


def _plain_raw_request(route: Route, path_values: dict[str, str], body: RawBody) -> Message | None:
    """`decode_request` of a raw body with no query whose path values are ASCII texts of plain
    string fields (a carrier push: the gateway's most frequent request), set directly; None
    when the general way must decide. The general way would check and set the same texts."""
    fields = route.plain_path_fields
    if not route.raw_body or fields is None or path_values.keys() != fields.keys():
        return None
    if not all(text.isascii() for text in path_values.values()):
        return None  # the general way decides what a surrogate or odd text becomes
    message = route.request_class()
    for variable, text in path_values.items():
        setattr(message, fields[variable], text)
    _set_raw_body(route, message, body)
    return message


def _set_raw_body(route: Route, message: Message, body: RawBody) -> None:
    """Put a raw body in its google.api.HttpBody field as it is (`_body_into` left it out): the
    same message as base64 through json_format, without encoding and decoding every byte."""
    field = route.body_field
    assert field is not None
    http_body = getattr(message, field.name)
    http_body.SetInParent()  # present even when empty, as json_format made it
    http_body.content_type = body.content_type
    http_body.data = body.data


def finish_request(
    route: Route,
    message: Message,
    partner_id: str | None,
    signature_headers: Mapping[str, str] | None = None,
    *,
    rules_hold: bool = False,
) -> Message:
    """The second half of `build_request`: set the server-owned fields on a decoded message and
    check the contract's rules (which may read them); raises a 400 Problem if any is broken.

    With `rules_hold` the check is skipped: the caller knows no rule can be broken (a carrier
    push that `carrier_push.keeps_contract` passes; the backend checks it in full)."""
    fields = route.binding.method.input_type.fields_by_name
    if partner_id is not None and PARTNER_FIELD in fields:
        setattr(message, PARTNER_FIELD, partner_id)
    if signature_headers and SIGNATURE_HEADERS_FIELD in fields:
        getattr(message, SIGNATURE_HEADERS_FIELD).update(signature_headers)
    if rules_hold:
        return message
    invalid = violations_of(message)
    if invalid:
        raise bad_request(
            "the request breaks the contract's rules",
            [Violation(v.field, v.description) for v in invalid],
        )
    return message


def set_idempotency_key(message: Message, key: str) -> None:
    """Give a request with an `idempotency_key` field the (valid) Idempotency-Key header, so the
    backend answers a retry with its first result even after the gateway's record is gone."""
    if IDEMPOTENCY_FIELD in message.DESCRIPTOR.fields_by_name:
        setattr(message, IDEMPOTENCY_FIELD, key)


def _query_into(
    route: Route, query: Sequence[tuple[str, str]], bound: set[str], data: dict[str, Any]
) -> list[Violation]:
    descriptor = route.binding.method.input_type
    body_field = route.body_field
    problems: list[Violation] = []
    seen: set[str] = set()
    for key, text in query:
        resolved = _resolve(descriptor, key)
        if resolved is None or route.binding.body == "*":
            problems.append(Violation(key, "is not a query parameter of this operation"))
            continue
        chain, proto_path = resolved
        top = chain[0].name
        if top in SERVER_OWNED_FIELDS:
            problems.append(Violation(proto_path, "is set by the server and must not be sent"))
            continue
        if top in bound or (body_field is not None and top == body_field.name):
            problems.append(Violation(proto_path, "is given by the path or body, not the query"))
            continue
        leaf = chain[-1]
        value, errors = scalar_from_text(text, leaf, proto_path)
        if errors:
            problems += errors
            continue
        if leaf.is_repeated:
            container = data
            for field in chain[:-1]:
                container = container.setdefault(field.name, {})
            container.setdefault(leaf.name, []).append(value)
        elif proto_path in seen:
            problems.append(Violation(proto_path, "is not repeated; give it once"))
        else:
            _set_path(data, chain, value)
        seen.add(proto_path)
    return problems


def _body_into(
    route: Route, body: Any | None, bound: set[str], data: dict[str, Any]
) -> list[Violation]:
    rule = route.binding.body
    if rule == "":
        if body is not None:
            return [Violation("", "this operation takes no request body")]
        return []
    if body is None:
        body = {}
    if isinstance(body, RawBody):
        return []  # set on the message as bytes, after the JSON fields (`_set_raw_body`)
    problems = _server_owned_in(body, "" if rule == "*" else rule)
    if rule == "*":
        descriptor = route.binding.method.input_type
        problems += check_message(body, descriptor, "")
        if isinstance(body, dict):
            for key in body:
                field = field_named(descriptor, key)
                if field is not None and field.name in bound:
                    problems.append(Violation(field.name, "is given by the path, not the body"))
            if not problems:
                data.update(body)
        return problems
    field = route.body_field
    assert field is not None
    problems += check_field(body, field, field.name)
    if not problems:
        data[field.name] = body
    return problems


def response_json(route: Route, response: Message) -> Any:
    """Proto3 JSON of the response (or of its response_body field), every field present."""
    if route.binding.response_body:
        response = getattr(response, route.binding.response_body)
    flat = _flat_fields(response.DESCRIPTOR)
    if flat is not None:
        return _flat_json(response, flat)
    return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


# Scalars whose proto3 JSON is the Python value itself (int64 would be a string, floats have
# special values, bytes are base64, enums are names).
_PLAIN_JSON_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
    }
)


@dataclass(frozen=True)
class _FlatFields:
    by_number: tuple[tuple[str, str], ...]  # (proto name, JSON name), in field-number order
    declared: tuple[tuple[str, Any], ...]  # (JSON name, default), in declaration order


@functools.cache
def _flat_fields(descriptor: Descriptor) -> _FlatFields | None:
    """The fields of a message of plain scalars only (e.g. IngestWebhookResponse), else None."""
    if descriptor.full_name.startswith("google.protobuf.") or descriptor.extension_ranges:
        return None
    fields = descriptor.fields
    for field in fields:
        if field.type not in _PLAIN_JSON_TYPES or field.is_repeated or field.has_presence:
            return None
    by_number = sorted(fields, key=lambda field: field.number)
    return _FlatFields(
        tuple((field.name, field.json_name) for field in by_number),
        tuple((field.json_name, field.default_value) for field in fields),
    )


def _flat_json(message: Message, flat: _FlatFields) -> dict[str, Any]:
    """MessageToDict(message, always_print_fields_with_no_presence=True) of a flat message: the
    set fields first, by number (ListFields), then the unset ones with their defaults, in
    declaration order."""
    js: dict[str, Any] = {}
    for name, json_name in flat.by_number:
        value = getattr(message, name)
        if value:  # set: a scalar without presence is set when it is not its default
            js[json_name] = value
    for json_name, default in flat.declared:
        if json_name not in js:
            js[json_name] = default
    return js
