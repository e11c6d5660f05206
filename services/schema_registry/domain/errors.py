"""Registry errors on the kit's error classes, each carrying its Confluent error code.

The kit's interceptor maps them to gRPC statuses (the code travels as ErrorInfo metadata
"error_code"); the REST API answers `{"error_code": N, "message": ...}` with the HTTP status
from `http_error_of`. Codes follow Confluent Schema Registry:

    40401 subject not found      40402 version not found      40403 schema not found
    40408 subject has no config  409   incompatible schema    42201 invalid schema
    42202 invalid version        42203 invalid compatibility level
    50001 store error (concurrent registrations kept conflicting)
"""

from __future__ import annotations

from collections.abc import Sequence

from services.kit.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)
from services.schema_registry.domain.model import Violation

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_CONFIG_NOT_FOUND = 40408
INCOMPATIBLE_SCHEMA = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
STORE_ERROR = 50001

ERROR_CODE_KEY = "error_code"


def _coded(code: int) -> dict[str, str]:
    return {ERROR_CODE_KEY: str(code)}


def version_resource(subject: str, version: int) -> str:
    """The resource name of a subject version, as PreconditionFailure subjects carry it."""
    return f"subjects/{subject}/versions/{version}"


class SubjectNotFound(NotFound):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"subject {subject!r} not found",
            resource_type="subject",
            resource_name=subject,
            reason="SUBJECT_NOT_FOUND",
            metadata=_coded(SUBJECT_NOT_FOUND),
        )


class VersionNotFound(NotFound):
    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"version {version} of subject {subject!r} not found",
            resource_type="subject version",
            resource_name=version_resource(subject, version),
            reason="VERSION_NOT_FOUND",
            metadata=_coded(VERSION_NOT_FOUND),
        )


class SchemaNotFound(NotFound):
    def __init__(self, schema_id: int | str) -> None:
        super().__init__(
            f"schema {schema_id} not found",
            resource_type="schema",
            resource_name=str(schema_id),
            reason="SCHEMA_NOT_FOUND",
            metadata=_coded(SCHEMA_NOT_FOUND),
        )


class SubjectConfigNotFound(NotFound):
    def __init__(self, subject: str) -> None:
        super().__init__(
            f"subject {subject!r} has no subject-level compatibility level",
            resource_type="subject config",
            resource_name=subject,
            reason="SUBJECT_CONFIG_NOT_FOUND",
            metadata=_coded(SUBJECT_CONFIG_NOT_FOUND),
        )


class InvalidSchema(InvalidArgument):
    """The descriptor set does not parse, lacks a dependency, or lacks the message."""

    def __init__(self, description: str, *, field: str = "file_descriptor_set") -> None:
        super().__init__(
            f"invalid schema: {description}",
            [FieldViolation(field, "schema.invalid", description)],
            reason="INVALID_SCHEMA",
            metadata=_coded(INVALID_SCHEMA),
        )


class InvalidVersion(InvalidArgument):
    def __init__(self, value: str) -> None:
        description = f"{value!r} is not a version: use a number from 1, or 'latest'"
        super().__init__(
            f"invalid version: {description}",
            [FieldViolation("version", "version.invalid", description)],
            reason="INVALID_VERSION",
            metadata=_coded(INVALID_VERSION),
        )


class InvalidCompatibilityLevel(InvalidArgument):
    def __init__(self, description: str) -> None:
        super().__init__(
            description,
            [FieldViolation("compatibility", "compatibility.invalid", description)],
            reason="INVALID_COMPATIBILITY_LEVEL",
            metadata=_coded(INVALID_COMPATIBILITY_LEVEL),
        )


class IncompatibleSchema(FailedPrecondition):
    """The candidate breaks the subject's compatibility mode; `violations` say how.

    FAILED_PRECONDITION rather than ALREADY_EXISTS or ABORTED: the request is well formed, but
    the subject's registered versions and mode forbid it, and retrying unchanged fails again.
    """

    def __init__(self, subject: str, violations: Sequence[Violation]) -> None:
        self.compat_violations = tuple(violations)
        reasons = "; ".join(v.describe() for v in self.compat_violations)
        super().__init__(
            f"schema is incompatible with subject {subject!r}: {reasons}",
            violations=[
                PreconditionViolation(
                    type=v.rule,
                    subject=version_resource(subject, v.against_version),
                    description=v.message,
                )
                for v in self.compat_violations
            ],
            reason="INCOMPATIBLE_SCHEMA",
            metadata=_coded(INCOMPATIBLE_SCHEMA),
        )


class RegistrationConflict(Conflict):
    """Concurrent registrations on one subject kept winning the race; the caller may retry."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"concurrent registrations on subject {subject!r} kept conflicting; retry",
            metadata=_coded(STORE_ERROR),
        )


# HTTP status and error code for kit errors that carry no Confluent code of their own.
_HTTP_DEFAULTS: dict[ErrorCode, tuple[int, int]] = {
    ErrorCode.INVALID_ARGUMENT: (422, 422),
    ErrorCode.NOT_FOUND: (404, 404),
    ErrorCode.FAILED_PRECONDITION: (409, 409),
    ErrorCode.ALREADY_EXISTS: (409, 409),
    ErrorCode.ABORTED: (500, STORE_ERROR),
}


def http_error_of(error: DomainError) -> tuple[int, int]:
    """(HTTP status, Confluent error_code) for a domain error."""
    fallback = _HTTP_DEFAULTS.get(error.code, (500, 50001))
    raw = error.metadata.get(ERROR_CODE_KEY)
    if raw is None:
        return fallback
    code = int(raw)
    # Confluent's codes start with their HTTP status: 40401 → 404, 42201 → 422, 409 → 409.
    status = code if code < 1000 else int(str(code)[:3])
    return status, code
