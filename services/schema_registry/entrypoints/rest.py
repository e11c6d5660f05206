"""A Confluent-compatible REST subset over HTTP (Starlette ASGI app, served by uvicorn).

    GET  /subjects                                         ["crossdock.order.placed.v1", ...]
    POST /subjects/{subject}/versions                      register → {"id": N}
    GET  /subjects/{subject}/versions                      [1, 2, 3]
    GET  /subjects/{subject}/versions/{version|latest}     one version
    GET  /schemas/ids/{id}                                 a schema by id
    POST /compatibility/subjects/{subject}/versions/{version|latest}[?verbose=true]
    POST /compatibility/subjects/{subject}/versions[?verbose=true]   what the mode requires
    GET|PUT /config, GET|PUT /config/{subject}             {"compatibility": "BACKWARD"}

Schema bodies differ from Confluent's PROTOBUF type, which carries .proto source text: we carry
compiled descriptor sets, the form services hold at run time (generated modules, no protoc in
production) and the form buf compares. The body of a register or compatibility POST is

    {"schemaType": "PROTOBUF",                  optional; any other type is 42201
     "schema": "<base64 of a serialized google.protobuf.FileDescriptorSet, every import included>",
     "messageName": "crossdock.events.v1.OrderPlaced"}

and schema responses carry the same three fields plus subject, version, id and fingerprint.
Requests may be `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`
or `application/json`; responses are `application/vnd.schemaregistry.v1+json`. Errors are
`{"error_code": 40401, "message": "..."}` with the HTTP status the code starts with.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from crossdock.registry.v1 import registry_service_pb2 as pb
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.kit.errors import DomainError, InvalidArgument
from services.kit.validation import violations_of
from services.schema_registry.adapters.store.tables import GLOBAL_SUBJECT
from services.schema_registry.app import SchemaRegistry
from services.schema_registry.domain.errors import (
    InvalidCompatibilityLevel,
    InvalidSchema,
    InvalidVersion,
    http_error_of,
)
from services.schema_registry.domain.model import RegisteredSchema
from services.schema_registry.domain.modes import parse_mode

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_TYPES = frozenset(
    {CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json"}
)
_MAX_VERSION = 2**31 - 1
# The contract caps a descriptor set at 4 MiB; base64 and JSON add a third, plus headroom.
_MAX_BODY_BYTES = 6 * 1024 * 1024
_SCHEMA_FIELDS = frozenset({"message_name", "file_descriptor_set"})


class RegistryResponse(JSONResponse):
    media_type = CONTENT_TYPE


class _HttpError(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def _error(status: int, error_code: int, message: str) -> Response:
    return RegistryResponse({"error_code": error_code, "message": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in ACCEPTED_TYPES:
        raise _HttpError(415, 415, f"unsupported content type {media_type!r}; send {CONTENT_TYPE}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
        raise _HttpError(413, 413, f"the request body is over {_MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise _HttpError(400, 400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise _HttpError(400, 400, "the request body must be a JSON object")
    return body


def _schema_input(body: dict[str, Any]) -> tuple[str, bytes]:
    """(message name, descriptor set bytes) of a register or compatibility body."""
    schema_type = body.get("schemaType", "PROTOBUF")
    if schema_type != "PROTOBUF":
        raise InvalidSchema(f"schemaType {schema_type!r} is not supported; use PROTOBUF")
    encoded = body.get("schema")
    if not isinstance(encoded, str) or not encoded:
        raise InvalidSchema("schema must be a base64 FileDescriptorSet")
    try:
        descriptor_set = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSchema("schema is not valid base64") from None
    message_name = body.get("messageName")
    if not isinstance(message_name, str) or not message_name:
        raise InvalidSchema("messageName must name the event message", field="message_name")
    return message_name, descriptor_set


def _validated(request: pb.RegisterSchemaRequest | pb.CheckCompatibilityRequest) -> None:
    """The contract's protovalidate rules, as the gRPC interceptor applies them."""
    violations = violations_of(request)
    if not violations:
        return
    schema_violation = next((v for v in violations if v.field in _SCHEMA_FIELDS), None)
    if schema_violation is not None:
        raise InvalidSchema(schema_violation.description, field=schema_violation.field)
    fields = ", ".join(v.field for v in violations)
    raise InvalidArgument(f"invalid request: {fields}", violations)


def _version_of(raw: str) -> int | None:
    """A path version: a number from 1, or "latest" / -1 (None)."""
    if raw in ("latest", "-1"):
        return None
    if raw.isdigit() and 1 <= int(raw) <= _MAX_VERSION:
        return int(raw)
    raise InvalidVersion(raw)


def _schema_body(schema: RegisteredSchema, *, with_subject: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": schema.schema_id,
        "schemaType": "PROTOBUF",
        "schema": base64.b64encode(schema.descriptor).decode("ascii"),
        "messageName": schema.message_name,
        "fingerprint": schema.fingerprint,
    }
    if with_subject:
        body |= {"subject": schema.subject, "version": schema.version}
    return body


def create_app(registry: SchemaRegistry) -> Starlette:
    """The REST API over a SchemaRegistry."""

    async def root(request: Request) -> Response:
        return RegistryResponse({})

    async def list_subjects(request: Request) -> Response:
        return RegistryResponse(await registry.subjects())

    async def register(request: Request) -> Response:
        subject = request.path_params["subject"]
        message_name, descriptor_set = _schema_input(await _json_body(request))
        _validated(
            pb.RegisterSchemaRequest(
                subject=subject, message_name=message_name, file_descriptor_set=descriptor_set
            )
        )
        schema = await registry.register(subject, message_name, descriptor_set)
        return RegistryResponse({"id": schema.schema_id})

    async def list_versions(request: Request) -> Response:
        return RegistryResponse(await registry.versions(request.path_params["subject"]))

    async def get_version(request: Request) -> Response:
        version = _version_of(request.path_params["version"])
        schema = await registry.version(request.path_params["subject"], version)
        return RegistryResponse(_schema_body(schema, with_subject=True))

    async def get_schema(request: Request) -> Response:
        raw = request.path_params["schema_id"]
        if not raw.isdigit() or int(raw) < 1:
            raise _HttpError(404, 40403, f"schema {raw} not found")
        schema = await registry.schema_by_id(int(raw))
        return RegistryResponse(_schema_body(schema, with_subject=False))

    async def check(request: Request) -> Response:
        subject = request.path_params["subject"]
        raw_version = request.path_params.get("version")
        version = None if raw_version is None else _version_of(raw_version)
        message_name, descriptor_set = _schema_input(await _json_body(request))
        _validated(
            pb.CheckCompatibilityRequest(
                subject=subject, message_name=message_name, file_descriptor_set=descriptor_set
            )
        )
        if raw_version is not None and version is None:
            version = (await registry.version(subject, None)).version  # "latest", by number
        violations = await registry.check(subject, message_name, descriptor_set, version)
        body: dict[str, Any] = {"is_compatible": not violations}
        if request.query_params.get("verbose", "").lower() == "true":
            body["messages"] = [v.describe() for v in violations]
        return RegistryResponse(body)

    async def get_config(request: Request) -> Response:
        subject = request.path_params.get("subject")
        if subject is None:
            mode = await registry.mode(GLOBAL_SUBJECT)
        elif request.query_params.get("defaultToGlobal", "").lower() == "true":
            mode = await registry.mode(subject)
        else:
            mode = await registry.subject_mode(subject)
        return RegistryResponse({"compatibilityLevel": mode.value})

    async def put_config(request: Request) -> Response:
        body = await _json_body(request)
        raw = body.get("compatibility")
        if not isinstance(raw, str):  # never parse a missing value: repr(None) is "None"
            raise InvalidCompatibilityLevel('give {"compatibility": "<level>"}')
        mode = parse_mode(raw)
        subject = request.path_params.get("subject", GLOBAL_SUBJECT)
        await registry.set_mode(mode, subject)
        return RegistryResponse({"compatibility": mode.value})

    async def on_domain_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, DomainError)
        status, code = http_error_of(error)
        return _error(status, code, error.message)

    async def on_http_error(request: Request, error: Exception) -> Response:
        if isinstance(error, _HttpError):
            return _error(error.status, error.error_code, error.message)
        assert isinstance(error, HTTPException)
        return _error(error.status_code, error.status_code, str(error.detail))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.error("REST %s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, 50001, "internal error")

    subject_path = "/subjects/{subject}"
    return Starlette(
        routes=[
            Route("/", root),
            Route("/subjects", list_subjects),
            Route(f"{subject_path}/versions", register, methods=["POST"]),
            Route(f"{subject_path}/versions", list_versions, methods=["GET"]),
            Route(f"{subject_path}/versions/{{version}}", get_version, methods=["GET"]),
            Route("/schemas/ids/{schema_id}", get_schema),
            Route(f"/compatibility{subject_path}/versions/{{version}}", check, methods=["POST"]),
            Route(f"/compatibility{subject_path}/versions", check, methods=["POST"]),
            Route("/config", get_config, methods=["GET"]),
            Route("/config", put_config, methods=["PUT"]),
            Route("/config/{subject}", get_config, methods=["GET"]),
            Route("/config/{subject}", put_config, methods=["PUT"]),
        ],
        exception_handlers={
            DomainError: on_domain_error,
            _HttpError: on_http_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
