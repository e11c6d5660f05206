"""Inventory's domain errors, on the kit's error classes so the api maps them in one place.

Each subclass fixes the ErrorInfo `reason` a program can branch on; messages speak the caller's
terms (SKU, location, quantities) and never internals.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)

__all__ = [
    "AlreadyExists",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyKeyReused",
    "InsufficientStockForAdjustment",
    "InvalidArgument",
    "LocationInactive",
    "NotFound",
    "PickNotOpen",
    "PreconditionViolation",
    "ReservationNotActive",
    "invalid",
    "not_found",
]


class IdempotencyKeyReused(AlreadyExists):
    """The idempotency key was already used for a different request."""

    default_reason = "IDEMPOTENCY_KEY_REUSED"


class LocationInactive(FailedPrecondition):
    """The location takes no new reservations."""

    default_reason = "LOCATION_INACTIVE"


class ReservationNotActive(FailedPrecondition):
    """The reservation was already released or consumed."""

    default_reason = "RESERVATION_NOT_ACTIVE"


class PickNotOpen(FailedPrecondition):
    """The pick task was cancelled, or confirmed with different quantities."""

    default_reason = "PICK_NOT_OPEN"


class InsufficientStockForAdjustment(FailedPrecondition):
    """A negative adjustment would leave on hand below what is reserved."""

    default_reason = "ADJUSTMENT_BELOW_RESERVED"


def invalid(violations: Sequence[FieldViolation]) -> InvalidArgument:
    """One InvalidArgument naming every bad field, so a caller can fix them all at once."""
    return InvalidArgument.for_violations(violations)


def not_found(resource_type: str, name: str) -> NotFound:
    """A NotFound with ResourceInfo filled, e.g. not_found("item", "SKU-1")."""
    return NotFound(
        f"{resource_type} {name!r} does not exist",
        resource_type=resource_type,
        resource_name=name,
        reason=f"{resource_type.upper()}_NOT_FOUND",
    )
