"""The one mapping from domain errors to gRPC statuses with rich details, and back to details.

Servers send a `google.rpc.Status` in the `grpc-status-details-bin` trailer, as grpcio-status
does, so any gRPC client (and the gateway) can read the details:

- InvalidArgument → BadRequest with one FieldViolation per bad field (reason = protovalidate
  rule id), the same paths the gateway puts in problem+json;
- NotFound / AlreadyExists → ResourceInfo; AlreadyExists, FailedPrecondition, Conflict and any
  error given a `reason` → ErrorInfo (reason, domain, metadata);
- FailedPrecondition with violations → PreconditionFailure;
- ResourceExhausted / Unavailable with `retry_after_seconds` → RetryInfo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from services.kit.errors import (
    AlreadyExists,
    DomainError,
    ErrorCode,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

# The trailer grpcio-status reads (grpc_status.rpc_status.from_call).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

GRPC_STATUS_OF: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.ABORTED: grpc.StatusCode.ABORTED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
}

_M = TypeVar("_M", bound=Message)


def grpc_code(code: grpc.StatusCode) -> int:
    """The numeric code of a grpc.StatusCode (what google.rpc.Status.code holds)."""
    number: int = code.value[0]
    return number


def grpc_status_of(error: DomainError) -> grpc.StatusCode:
    """The gRPC status code a domain error is answered with."""
    return GRPC_STATUS_OF[error.code]


def bad_request(violations: Sequence[FieldViolation]) -> error_details_pb2.BadRequest:
    """A google.rpc.BadRequest naming each violated field and rule."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=v.description, reason=v.rule_id
            )
            for v in violations
        ]
    )


def rich_status(error: DomainError, *, domain: str) -> status_pb2.Status:
    """The google.rpc.Status for a domain error; `domain` names the ErrorInfo domain."""
    details: list[Message] = []
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(bad_request(error.violations))
    if isinstance(error, NotFound | AlreadyExists) and (error.resource_type or error.resource_name):
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=error.resource_type,
                resource_name=error.resource_name,
                description=error.message,
            )
        )
    if isinstance(error, FailedPrecondition) and error.violations:
        details.append(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    if isinstance(error, ResourceExhausted | Unavailable) and error.retry_after_seconds:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    if error.reason:
        details.append(
            error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
        )
    return make_status(grpc_status_of(error), error.message, details)


def make_status(
    code: grpc.StatusCode, message: str, details: Sequence[Message] = ()
) -> status_pb2.Status:
    """A google.rpc.Status with each detail packed into an Any."""
    packed: list[any_pb2.Any] = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    return status_pb2.Status(code=grpc_code(code), message=message, details=packed)


def status_of_failure(
    error: BaseException, *, domain: str, correlation_id: str
) -> status_pb2.Status:
    """The status a unary call failing with `error` ends with, as the server interceptor answers
    it: a domain error's own code and details; anything else INTERNAL, naming only the
    correlation id. For batch RPCs that answer each item with its own status."""
    if isinstance(error, DomainError):
        return rich_status(error, domain=domain)
    return make_status(
        grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation_id})"
    )


def status_trailer(status: status_pb2.Status) -> tuple[str, bytes]:
    """The trailing-metadata entry that carries a rich status to the client."""
    return (STATUS_DETAILS_KEY, status.SerializeToString())


# ---- reading statuses (clients, gateway, tests) -----------------------------------------------


def status_from_error(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status a server sent with an error, or None when it sent none."""
    trailing = cast(Sequence[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def details_of(status: status_pb2.Status, detail_type: type[_M]) -> list[_M]:
    """Every detail of one type in a status, e.g. details_of(s, error_details_pb2.BadRequest)."""
    found: list[_M] = []
    for item in status.details:
        detail = detail_type()
        if item.Unpack(detail):  # False when the Any holds another type
            found.append(detail)
    return found
