"""An async client of the registry's gRPC API, for the kit (producers and consumers) and the CLI.

    async with SchemaRegistryClient("registry:50070") as registry:
        schema = await registry.register_message(OrderPlaced, "crossdock.order.placed.v1")
        headers["ce-dataschema"] = str(schema.schema_id)
        ...
        schema = await registry.get_schema(int(headers["ce-dataschema"]))   # cached

Schemas are immutable once registered, so `get_schema` caches every id it has seen for the
life of the client (one call per id however many consumers ask at once); unknown ids are not
cached, so an id registered a moment later resolves on the next try. Every call has a deadline
and is retried on UNAVAILABLE (all registry calls are idempotent). Errors arrive as the
exceptions below, read from the status details the registry sends.

It lives in the kit (the kit imports no service): it needs only the kit and the generated
contracts, and the kit's event runtime uses it to register and resolve schema ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import grpc
from crossdock.registry.v1 import registry_pb2
from crossdock.registry.v1 import registry_service_pb2 as pb
from crossdock.registry.v1 import registry_service_pb2_grpc as pb_grpc
from google.protobuf import descriptor as descriptor_module
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from services.kit.client import open_channel
from services.kit.grpc_errors import details_of, status_from_error

T = TypeVar("T")

_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


class SchemaRegistryError(Exception):
    """A registry call failed; `reason` and `error_code` come from the status details."""

    def __init__(
        self, message: str, *, code: grpc.StatusCode, reason: str = "", error_code: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.error_code = error_code


class SubjectNotFoundError(SchemaRegistryError):
    """40401."""


class VersionNotFoundError(SchemaRegistryError):
    """40402."""


class UnknownSchemaIdError(SchemaRegistryError):
    """40403: the registry has no schema with this id (a consumer dead-letters the event)."""


class InvalidSchemaError(SchemaRegistryError):
    """42201 (or another INVALID_ARGUMENT)."""


class RegistryUnavailableError(SchemaRegistryError):
    """The registry could not be reached in time, even after retries."""


@dataclass(frozen=True)
class CompatibilityViolation:
    """One reason a schema was refused (mirrors registry.v1.CompatibilityViolation)."""

    rule: str
    against_version: int
    message: str


class IncompatibleSchemaError(SchemaRegistryError):
    """409: the schema breaks the subject's compatibility mode; `violations` say how."""

    def __init__(self, message: str, violations: tuple[CompatibilityViolation, ...]) -> None:
        super().__init__(
            message,
            code=grpc.StatusCode.FAILED_PRECONDITION,
            reason="INCOMPATIBLE_SCHEMA",
            error_code=409,
        )
        self.violations = violations


_BY_REASON: dict[str, type[SchemaRegistryError]] = {
    "SUBJECT_NOT_FOUND": SubjectNotFoundError,
    "VERSION_NOT_FOUND": VersionNotFoundError,
    "SCHEMA_NOT_FOUND": UnknownSchemaIdError,
}


def _error_from(error: grpc.aio.AioRpcError) -> SchemaRegistryError:
    status = status_from_error(error)
    message = error.details() or error.code().name
    info = details_of(status, error_details_pb2.ErrorInfo) if status is not None else []
    reason = info[0].reason if info else ""
    error_code = int(info[0].metadata.get("error_code", "0")) if info else 0
    if reason == "INCOMPATIBLE_SCHEMA" and status is not None:
        violations = tuple(
            CompatibilityViolation(
                rule=v.type,
                against_version=_version_in(v.subject),
                message=v.description,
            )
            for failure in details_of(status, error_details_pb2.PreconditionFailure)
            for v in failure.violations
        )
        return IncompatibleSchemaError(message, violations)
    cls = _BY_REASON.get(reason)
    if cls is None and error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        cls = InvalidSchemaError
    if cls is None and error.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        cls = RegistryUnavailableError
    return (cls or SchemaRegistryError)(
        message, code=error.code(), reason=reason, error_code=error_code
    )


def _version_in(resource: str) -> int:
    """3 from "subjects/crossdock.order.placed.v1/versions/3" (0 if the name has no version)."""
    tail = resource.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def descriptor_set_of(message: type[Message] | descriptor_module.Descriptor) -> bytes:
    """The serialized FileDescriptorSet of a generated message: its file and every import."""
    root = message if isinstance(message, descriptor_module.Descriptor) else message.DESCRIPTOR
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: Any) -> None:  # a FileDescriptor (upb's and the pure one differ in type)
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        descriptor_set.file.add().ParseFromString(file.serialized_pb)

    add(root.file)
    return descriptor_set.SerializeToString()


class SchemaRegistryClient:
    """The registry over gRPC, with an id → schema cache."""

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout_seconds: float = 5.0,
        attempts: int = 4,
        backoff_seconds: float = 0.1,
    ) -> None:
        if (target is None) == (channel is None):
            raise ValueError("give a target or a channel")
        self._own_channel = channel is None
        self._channel = channel or open_channel(
            _plain_target(target or ""), default_timeout_seconds=timeout_seconds
        )
        self._stub = pb_grpc.SchemaRegistryServiceStub(self._channel)
        self._timeout = timeout_seconds
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._schemas: dict[int, registry_pb2.Schema] = {}
        self._pending: dict[int, asyncio.Future[registry_pb2.Schema]] = {}

    async def __aenter__(self) -> SchemaRegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_channel:
            await self._channel.close(None)

    async def _call(self, rpc: Callable[..., Awaitable[T]], request: Message) -> T:
        for attempt in range(self._attempts):
            try:
                return await rpc(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as error:
                if error.code() not in _RETRYABLE or attempt + 1 == self._attempts:
                    raise _error_from(error) from None
            await asyncio.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")

    # ---- schemas ---------------------------------------------------------------------------

    async def register(
        self, subject: str, message_name: str, descriptor_set: bytes
    ) -> registry_pb2.Schema:
        """Register (or find) a schema under a subject; raises IncompatibleSchemaError."""
        request = pb.RegisterSchemaRequest(
            subject=subject, message_name=message_name, file_descriptor_set=descriptor_set
        )
        response: pb.RegisterSchemaResponse = await self._call(self._stub.RegisterSchema, request)
        self._schemas.setdefault(response.schema.schema_id, response.schema)
        return response.schema

    async def register_message(self, message: type[Message], subject: str) -> registry_pb2.Schema:
        """Register a generated event message's schema under its subject."""
        name = str(message.DESCRIPTOR.full_name)
        return await self.register(subject, name, descriptor_set_of(message))

    async def get_schema(self, schema_id: int) -> registry_pb2.Schema:
        """The schema with this id (cached); UnknownSchemaIdError when the registry has none."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        fetch = self._pending.get(schema_id)
        if fetch is None:
            # One call per id however many consumers ask at once; shielded so a cancelled
            # caller does not cancel the others' lookup.
            fetch = asyncio.ensure_future(self._fetch(schema_id))
            self._pending[schema_id] = fetch
            fetch.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(fetch)

    async def _fetch(self, schema_id: int) -> registry_pb2.Schema:
        try:
            response: pb.GetSchemaResponse = await self._call(
                self._stub.GetSchema, pb.GetSchemaRequest(schema_id=schema_id)
            )
        finally:
            del self._pending[schema_id]
        self._schemas[schema_id] = response.schema
        return response.schema

    def cached(self, schema_id: int) -> registry_pb2.Schema | None:
        """The cached schema for an id, without a call."""
        return self._schemas.get(schema_id)

    async def check(
        self, subject: str, message_name: str, descriptor_set: bytes, version: int = 0
    ) -> tuple[CompatibilityViolation, ...]:
        """Why the schema may not be registered (empty: it may); version 0 = what the mode needs."""
        request = pb.CheckCompatibilityRequest(
            subject=subject,
            version=version,
            message_name=message_name,
            file_descriptor_set=descriptor_set,
        )
        response: pb.CheckCompatibilityResponse = await self._call(
            self._stub.CheckCompatibility, request
        )
        return tuple(
            CompatibilityViolation(v.rule, v.against_version, v.message)
            for v in response.violations
        )

    async def list_subjects(self) -> list[str]:
        response: pb.ListSubjectsResponse = await self._call(
            self._stub.ListSubjects, pb.ListSubjectsRequest()
        )
        return list(response.subjects)

    async def list_versions(self, subject: str) -> list[int]:
        response: pb.ListVersionsResponse = await self._call(
            self._stub.ListVersions, pb.ListVersionsRequest(subject=subject)
        )
        return list(response.versions)

    async def get_version(self, subject: str, version: int = 0) -> registry_pb2.Schema:
        """One version of a subject; 0 = the latest."""
        response: pb.GetVersionResponse = await self._call(
            self._stub.GetVersion, pb.GetVersionRequest(subject=subject, version=version)
        )
        return response.schema

    # ---- configuration ---------------------------------------------------------------------

    async def get_config(self, subject: str = "") -> str:
        """The mode in force, e.g. "BACKWARD" ("" = the global mode)."""
        response: pb.GetConfigResponse = await self._call(
            self._stub.GetConfig, pb.GetConfigRequest(subject=subject)
        )
        return _mode_name(response.compatibility)

    async def set_config(self, mode: str, subject: str = "") -> str:
        """Set a mode by name, e.g. "FULL_TRANSITIVE" ("" = the global mode)."""
        value = registry_pb2.CompatibilityMode.Value(_MODE_PREFIX + mode.upper())
        response: pb.SetConfigResponse = await self._call(
            self._stub.SetConfig, pb.SetConfigRequest(subject=subject, compatibility=value)
        )
        return _mode_name(response.compatibility)


_MODE_PREFIX = "COMPATIBILITY_MODE_"


def _mode_name(value: registry_pb2.CompatibilityMode.ValueType) -> str:
    return registry_pb2.CompatibilityMode.Name(value).removeprefix(_MODE_PREFIX)


def _plain_target(target: str) -> str:
    """Accept "host:port" or "grpc://host:port"."""
    return target.removeprefix("grpc://")
