"""OpenAPI 3.1 from the same routes the transcoder serves.

Schemas come from the message descriptors (JSON names, proto3 JSON types), descriptions from the
proto comments (contract_docs), constraints from the protovalidate rules on each field. Request
schemas leave out what a client may not send: path-bound and server-owned fields. Every JSON body
and response carries an example (openapi_examples), which Swagger UI on /docs starts from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.auth import SCOPES, is_signed_push, scope_for
from gateway.jsonmap import enum_of, message_of
from gateway.openapi_examples import add_examples
from gateway.openapi_rules import (
    cel_notes,
    integer_schema,
    message_cel_notes,
    non_zero,
    nullable,
    numeric_keywords,
    rejects_zero,
    rules_of,
    string_keywords,
    with_notes,
)
from gateway.transcoder import SERVER_OWNED_FIELDS, Route

# proto integer types: their JSON Schema format and range.
_INT32 = ("int32", -(2**31), 2**31 - 1)
_UINT32 = ("uint32", 0, 2**32 - 1)
_INT64 = ("int64", -(2**63), 2**63 - 1)
_UINT64 = ("uint64", 0, 2**64 - 1)
_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.Int32Value": {"type": "integer"},
    "google.protobuf.Int64Value": {"type": ["integer", "string"]},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
    "google.api.HttpBody": {"type": "string", "description": "the raw request body"},
}
# Every problem status the gateway (or a backend, through the gRPC mapping) can answer.
_ERROR_STATUSES: dict[str, str] = {
    "400": "invalid input: malformed JSON, unknown or server-owned fields, wrong types, broken "
    "rules (each in `violations`), or a failed precondition",
    "401": "no API key, or not a valid one",
    "403": "the API key lacks the operation's scope",
    "404": "no such resource (or it belongs to another partner)",
    "405": "the method is not allowed on this path; see the Allow header",
    "409": "conflict: the resource's state forbids this, or a request with this "
    "Idempotency-Key is still running",
    "413": "the request body is too large",
    "415": "the request body is not JSON",
    "429": "rate limit exceeded; see Retry-After and the RateLimit-* headers",
    "501": "the operation is in the contract but not implemented yet",
    "503": "a backend is not available; retry after Retry-After",
    "504": "a backend did not answer in time",
}
_IDEMPOTENCY_MISMATCH = (
    "this Idempotency-Key was used with a different request; or the request is well-formed but"
    " breaks a business rule with a limit, each broken rule naming its field and limit in"
    " `violations` (e.g. returning more units than are still returnable)"
)
# Every problem status, as the docs page's problem table (the `type` anchors) lists them.
PROBLEM_STATUSES: dict[int, str] = {
    **{int(status): text for status, text in _ERROR_STATUSES.items()},
    422: _IDEMPOTENCY_MISMATCH,
    500: "an unexpected error; quote the correlation id when asking for help",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; every error response has this shape.",
    "required": ["type", "title", "status", "detail", "grpc_code", "correlation_id", "violations"],
    "properties": {
        "type": {"type": "string", "description": "identifies the kind of problem"},
        "title": {"type": "string", "description": "short summary of the HTTP status"},
        "status": {"type": "integer", "description": "the HTTP status code"},
        "detail": {"type": "string", "description": "what went wrong with this request"},
        "grpc_code": {"type": "string", "description": "the gRPC status name, e.g. NOT_FOUND"},
        "correlation_id": {"type": "string", "description": "quote it when asking for help"},
        "violations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "description"],
                "properties": {
                    "field": {"type": "string", "description": 'e.g. "order.lines[0].quantity"'},
                    "description": {"type": "string"},
                },
            },
        },
    },
}


class _SchemaBuilder:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}

    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursion stops here
            self.components[name] = self.message(descriptor, exclude=())
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_ref(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {
                "type": "string",
                "enum": [v.name for v in descriptor.values],
                "description": self.comments.get(name, ""),
            }
        return {"$ref": f"#/components/schemas/{name}"}

    def message(self, descriptor: Descriptor, exclude: Sequence[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in descriptor.fields:
            if field.name in exclude:
                continue
            if rejects_zero(field, rules_of(field)):
                properties[field.json_name] = self.field(field)
                required.append(field.json_name)
            else:
                properties[field.json_name] = nullable(self.field(field))
        # Unknown fields are rejected (400), so the schema closes the object. The proto field
        # names are accepted too, as aliases of these JSON names (proto3 JSON), not listed.
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        description = with_notes(
            self.comments.get(descriptor.full_name, ""), message_cel_notes(descriptor)
        )
        if description:
            schema["description"] = description
        return schema

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        rules = rules_of(field)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.single(value, rules.map.values),
            }
            if rules.map.HasField("max_pairs"):
                schema["maxProperties"] = rules.map.max_pairs
            if rules.map.HasField("min_pairs"):
                schema["minProperties"] = rules.map.min_pairs
        elif field.is_repeated:
            schema = {"type": "array", "items": self.single(field, rules.repeated.items)}
            if rules.repeated.HasField("min_items"):
                schema["minItems"] = rules.repeated.min_items
            if rules.repeated.HasField("max_items"):
                schema["maxItems"] = rules.repeated.max_items
            if rules.repeated.unique:
                schema["uniqueItems"] = True
        else:
            schema = self.single(field, rules)
            if rules.required and not field.has_presence:
                schema = non_zero(field, schema)
        description = with_notes(self.comments.get(field.full_name, ""), cel_notes(rules))
        if description:
            if "$ref" in schema:  # 3.1 allows siblings of $ref
                schema = {**schema, "description": description}
            else:
                schema["description"] = description
        return schema

    def single(self, field: FieldDescriptor, rules: validate_pb2.FieldRules) -> dict[str, Any]:
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            return self.ref(message_of(field))
        if kind == FieldDescriptor.TYPE_ENUM:
            names = [v.name for v in enum_of(field).values]
            numbers = {v.number: v.name for v in enum_of(field).values}
            excluded = {numbers.get(n) for n in rules.enum.not_in}
            if rules.required and not field.has_presence:
                excluded.add(numbers.get(0))  # required: the zero value counts as unset
            allowed = {numbers.get(n) for n in getattr(rules.enum, "in")}
            if excluded or allowed:
                kept = [n for n in names if n not in excluded and (not allowed or n in allowed)]
                return {"type": "string", "enum": kept}
            return self.enum_ref(enum_of(field))
        if kind == FieldDescriptor.TYPE_STRING:
            return string_keywords(rules.string)
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number", **numeric_keywords(rules)}
        fmt, low, high = _INTEGER_TYPES.get(kind, _INT32)
        return integer_schema(fmt, low, high, numeric_keywords(rules))


def build_openapi(routes: Sequence[Route], comments: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`."""
    builder = _SchemaBuilder(comments)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, builder)
        paths.setdefault(route.template.openapi_path, {})[route.binding.http_method.lower()] = (
            operation
        )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "crossdock partner API",
            "version": "v1",
            "description": "Orders, inventory, shipments and invoices, generated from the "
            "crossdock contracts. Errors are RFC 9457 problem+json. Every POST accepts an "
            "Idempotency-Key header; rate limits are reported in RateLimit-* headers.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": builder.components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "API key",
                    "description": "An API key (cdk_...), sent as `Authorization: Bearer "
                    "<api key>`. Scopes: " + ", ".join(SCOPES),
                }
            },
        },
    }
    add_examples(document)
    return document


def _operation(route: Route, builder: _SchemaBuilder) -> dict[str, Any]:
    binding = route.binding
    request = binding.method.input_type
    bound = {name.split(".")[0] for name in route.template.variables}
    parameters: list[dict[str, Any]] = []
    for name in route.template.variables:
        field = _field_at(request, name)
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": builder.field(field)}
        )
    body_field = route.body_field
    if binding.body != "*":
        for field in request.fields:
            skip = field.name in bound or field.name in SERVER_OWNED_FIELDS
            if skip or (body_field is not None and field.name == body_field.name):
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                continue  # nested query parameters work but are not documented
            parameter: dict[str, Any] = {
                "name": field.name,
                "in": "query",
                "required": rejects_zero(field, rules_of(field)),
                "schema": builder.field(field),
            }
            if field.is_repeated:
                parameter.update(style="form", explode=True)
            parameters.append(parameter)
    parameters.append(
        {
            "name": "X-Correlation-Id",
            "in": "header",
            "required": False,
            "description": "your request id, returned on every response. Any value is accepted:"
            " one that is not 1-128 printable ASCII characters without spaces is replaced by a"
            " generated id, as is an absent one.",
            "schema": {"type": "string"},
        }
    )
    success = str(route.success_status)
    signed_push = is_signed_push(binding)
    operation: dict[str, Any] = {
        "operationId": binding.operation_id,
        "summary": builder.comments.get(binding.method.full_name, binding.method.name),
        "tags": [binding.service.name],
        "security": [{"bearerAuth": [scope_for(binding)]}],
        "x-required-scope": scope_for(binding),
        "parameters": parameters,
        "responses": {
            success: {
                "description": "success",
                "content": {
                    "application/json": {"schema": builder.ref(binding.method.output_type)}
                },
            },
            **{
                status: {
                    "description": description,
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
                for status, description in (
                    *_ERROR_STATUSES.items(),
                    *((("422", _IDEMPOTENCY_MISMATCH),) if binding.http_method == "POST" else ()),
                )
            },
        },
    }
    if signed_push:
        # No API key: the carrier's own signature headers authenticate the push.
        operation["security"] = []
        del operation["x-required-scope"]
    elif binding.http_method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "makes the POST safe to retry for 24 h; replays say "
                "Idempotent-Replayed: true. Use a fresh, unique key (e.g. a UUID) per distinct "
                "request: reusing a key with a different request answers 422, and while the "
                "first request with a key is running others answer 409.",
                # Printable ASCII; HTTP strips a value's outer spaces, so none at either end.
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[!-~]([ -~]*[!-~])?$",
                },
            }
        )
    if binding.body == "*":
        schema = builder.message(request, exclude=[*bound, *SERVER_OWNED_FIELDS])
        operation["requestBody"] = {
            # An absent body reads as {}: required only when {} breaks the rules.
            "required": bool(schema.get("required")),
            "content": {"application/json": {"schema": schema}},
        }
    elif route.raw_body:
        operation["requestBody"] = {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif body_field is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": builder.field(body_field)}},
        }
    return operation


def _field_at(descriptor: Descriptor, dotted: str) -> FieldDescriptor:
    field: FieldDescriptor | None = None
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        assert current is not None
        field = current.fields_by_name[part]
        current = field.message_type
    assert field is not None
    return field
