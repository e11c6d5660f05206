"""Domain errors: what a service's `domain` and `store` code raise when a request cannot succeed.

Each class names one outcome a caller can act on (fix the input, retry later, give up). The
mapping to gRPC status codes with rich details lives in one place, `services.kit.grpc_errors`,
and the gateway maps the same `ErrorCode` to HTTP; this module imports no grpc, so pure domain
code can raise these without pulling in the transport.

`message` is shown to the caller, so it must say what went wrong in the caller's terms and never
carry internals (SQL, stack, hostnames). Unexpected exceptions are not domain errors: the server
turns them into INTERNAL with a generic message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from services.kit.validation import FieldViolation

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DeadlineExceeded",
    "DomainError",
    "ErrorCode",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "PreconditionViolation",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class ErrorCode(enum.Enum):
    """The canonical outcome of a failed request; values are the gRPC status code names."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"


@dataclass(frozen=True)
class PreconditionViolation:
    """One unmet precondition (google.rpc.PreconditionFailure.Violation).

    `type` is a constant such as "ORDER_STATUS", `subject` what it applies to ("ord_01J…"),
    `description` how to fix it ("the order has shipped; create a return instead").
    """

    type: str
    subject: str
    description: str


class DomainError(Exception):
    """Base of every error a caller is meant to see.

    `reason` is an UPPER_SNAKE_CASE constant a program can branch on (google.rpc.ErrorInfo
    reason), e.g. "ORDER_ALREADY_SHIPPED"; `metadata` adds its facts as strings.
    """

    code: ClassVar[ErrorCode]
    # The ErrorInfo reason used when the raiser gives none; None means "send no ErrorInfo".
    default_reason: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason if reason is not None else self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request is malformed whatever the state: each bad field is named."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(violations)

    @classmethod
    def for_field(cls, field: str, description: str, rule_id: str = "") -> InvalidArgument:
        """One bad field, e.g. `InvalidArgument.for_field("order.lines[0].sku", "unknown SKU")`."""
        return cls(f"{field}: {description}", [FieldViolation(field, rule_id, description)])

    @classmethod
    def for_violations(
        cls, violations: Sequence[FieldViolation], lead: str = "invalid request"
    ) -> InvalidArgument:
        """One error naming every bad field, so a caller can fix them all in one go."""
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls(f"{lead}: {summary}", violations)


class _ResourceError(DomainError):
    """An error about one identified resource (google.rpc.ResourceInfo)."""

    def __init__(
        self,
        message: str,
        *,
        resource_type: str = "",
        resource_name: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.resource_type = resource_type
        self.resource_name = resource_name


class NotFound(_ResourceError):
    """The named resource does not exist (or belongs to someone else, which we do not reveal)."""

    code = ErrorCode.NOT_FOUND


class AlreadyExists(_ResourceError):
    """A create met an existing resource; `metadata` says which (e.g. the existing id)."""

    code = ErrorCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The request is valid but the state forbids it; retrying unchanged will fail again."""

    code = ErrorCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[PreconditionViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(violations)


class Conflict(DomainError):
    """A concurrent change won (optimistic lock, sequence clash); retry the whole operation.

    Maps to ABORTED, not ALREADY_EXISTS: the caller should re-read and retry.
    """

    code = ErrorCode.ABORTED
    default_reason = "CONFLICT"


class _RetryableError(DomainError):
    """An error worth retrying, optionally after `retry_after_seconds` (google.rpc.RetryInfo)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class ResourceExhausted(_RetryableError):
    """A quota or capacity limit was hit."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(_RetryableError):
    """A dependency is down or the service is draining; safe to retry idempotent calls."""

    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    """The work could not finish before the caller's deadline."""

    code = ErrorCode.DEADLINE_EXCEEDED


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    code = ErrorCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""

    code = ErrorCode.UNAUTHENTICATED
