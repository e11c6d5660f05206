"""The order domain's errors, on the kit's error classes so the api maps them in one place."""

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
    "InconsistentInput",
    "InvalidArgument",
    "NotFound",
    "OrderNotCancellable",
    "OrderNotRetryable",
    "OrderReplayMismatch",
    "PreconditionViolation",
    "ReturnNotAllowed",
    "ReturnReplayMismatch",
    "ReturnedShipmentAlreadyResolved",
    "ReturnedShipmentAwaitsDecision",
    "ShipmentNotReturnedToSender",
    "invalid_order",
]


class OrderReplayMismatch(AlreadyExists):
    """The partner reused an external order id with a different payload."""

    default_reason = "ORDER_EXTERNAL_ID_REUSED"


class OrderNotCancellable(FailedPrecondition):
    """The order has shipped units or is already completed."""

    default_reason = "ORDER_NOT_CANCELLABLE"


class OrderNotRetryable(FailedPrecondition):
    """Retry was asked for an order that is not in EXCEPTION."""

    default_reason = "ORDER_NOT_IN_EXCEPTION"


class ShipmentNotReturnedToSender(FailedPrecondition):
    """Reship or cancel-and-credit asked for a shipment the carrier did not return to sender (it
    is on its way, delivered or cancelled). The gateway answers this reason with 409."""

    default_reason = "SHIPMENT_NOT_RETURNED_TO_SENDER"


class ReturnedShipmentAlreadyResolved(FailedPrecondition):
    """A returned shipment was already reshipped (or cancelled and credited) and the other action
    was asked for. The same action again is no error: it changes nothing. REST 409."""

    default_reason = "RETURNED_SHIPMENT_ALREADY_RESOLVED"


class ReturnedShipmentAwaitsDecision(FailedPrecondition):
    """RetryOrderStep on an order whose exception is a shipment returned to sender: retrying
    cannot bring the parcel back; reship it or cancel and credit it."""

    default_reason = "RETURNED_SHIPMENT_AWAITS_DECISION"


class InconsistentInput(FailedPrecondition):
    """An event contradicts the order (unknown reservation, more units than ordered, ...).

    A consumer should dead-letter the event: it can never apply as it is.
    """

    default_reason = "INCONSISTENT_EVENT"


class ReturnNotAllowed(FailedPrecondition):
    """A return asks for units that are not returnable: not delivered, already authorized on
    another return, or past the return window. Each violation names the line and the limit; the
    gateway answers this reason with 422."""

    default_reason = "RETURN_NOT_ALLOWED"


class ReturnReplayMismatch(AlreadyExists):
    """A CreateReturn reused an idempotency key of the order with a different request."""

    default_reason = "RETURN_IDEMPOTENCY_KEY_REUSED"


def invalid_order(violations: Sequence[FieldViolation]) -> InvalidArgument:
    """One InvalidArgument naming every bad field of an order."""
    return InvalidArgument.for_violations(violations, "the order is invalid")
