"""OpenAPI 3.1 from the same routes the transcoder serves.

Schemas come from the message descriptors (JSON names, proto3 JSON types), descriptions from the
proto comments (contract_docs), constraints from the protovalidate rules on each field. Request
schemas leave out what a client may not send: path-bound and server-owned fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.auth import SCOPES, is_signed_push, scope_for
from gateway.jsonmap import enum_of, message_of
from gateway.transcoder import SERVER_OWNED_FIELDS, Route

_INTEGER_FORMATS = {
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_FIXED32: "uint32",
}
_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
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
_ERROR_STATUSES = ("400", "401", "403", "404", "405", "409", "413", "415", "429", "503", "504")

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
            properties[field.json_name] = self.field(field)
            if _rules(field).required:
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self.comments.get(descriptor.full_name)
        if description:
            schema["description"] = description
        return schema

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        rules = _rules(field)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.single(value, validate_pb2.FieldRules()),
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
        description = self.comments.get(field.full_name)
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
            allowed = {numbers.get(n) for n in rules.enum.__getattribute__("in")}
            if excluded or allowed:
                kept = [n for n in names if n not in excluded and (not allowed or n in allowed)]
                return {"type": "string", "enum": kept}
            return self.enum_ref(enum_of(field))
        if kind == FieldDescriptor.TYPE_STRING:
            return _string_schema(rules)
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {
                "type": "number",
                **_bounds(getattr(rules, rules.WhichOneof("type") or "double")),
            }
        schema: dict[str, Any]
        if kind in _INT64_TYPES:
            # proto3 JSON writes 64-bit integers as strings (JS numbers lose precision).
            schema = {"type": ["integer", "string"], "format": "int64"}
        else:
            schema = {"type": "integer", "format": _INTEGER_FORMATS.get(kind, "int32")}
        which = rules.WhichOneof("type")
        if which:
            schema.update(_bounds(getattr(rules, which)))
        return schema


def _rules(field: FieldDescriptor) -> validate_pb2.FieldRules:
    options = field.GetOptions()
    if options.HasExtension(validate_pb2.field):
        return options.Extensions[validate_pb2.field]
    return validate_pb2.FieldRules()


def _string_schema(rules: validate_pb2.FieldRules) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    text = rules.string
    if text.HasField("min_len"):
        schema["minLength"] = text.min_len
    if text.HasField("max_len"):
        schema["maxLength"] = text.max_len
    if text.HasField("pattern"):
        schema["pattern"] = text.pattern
    return schema


def _bounds(numeric: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for rule, keyword in (
        ("gt", "exclusiveMinimum"),
        ("gte", "minimum"),
        ("lt", "exclusiveMaximum"),
        ("lte", "maximum"),
    ):
        try:
            if numeric.HasField(rule):
                found[keyword] = getattr(numeric, rule)
        except ValueError:
            continue
    return found


def build_openapi(routes: Sequence[Route], comments: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`."""
    builder = _SchemaBuilder(comments)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, builder)
        paths.setdefault(route.template.openapi_path, {})[route.binding.http_method.lower()] = (
            operation
        )
    return {
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
                    "description": "An API key (cdk_...). Scopes: " + ", ".join(SCOPES),
                }
            },
        },
    }


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
            rules = _rules(field)
            needed = field.is_repeated and rules.repeated.min_items > 0
            parameter: dict[str, Any] = {
                "name": field.name,
                "in": "query",
                "required": needed,
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
            "description": "your request id; generated when absent, returned on every response",
            "schema": {"type": "string", "maxLength": 128, "pattern": "^[!-~]+$"},
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
                    "description": "problem",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
                for status in (
                    *_ERROR_STATUSES,
                    *(("422",) if binding.http_method == "POST" else ()),
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
                "Idempotent-Replayed: true",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if binding.body == "*":
        schema = builder.message(request, exclude=[*bound, *SERVER_OWNED_FIELDS])
        operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
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
