"""Carrier errors, built on the kit's domain errors so one place maps them to gRPC codes.

Two facts decide what a caller may do after a failure:
- `retryable`: the same call may succeed later (carrier down, timeout, rate limited);
- `maybe_committed`: the carrier may have acted before the failure (a timeout after the request
  was sent). A non-idempotent call (booking a label with a carrier that has no idempotency key)
  must not be blindly retried when this is true, or the shipper pays for two labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.kit.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "CarrierError",
    "CarrierRejected",
    "CarrierRequestInvalid",
    "CarrierTimeout",
    "CarrierUnavailable",
    "CircuitOpen",
    "UnknownService",
    "UnsupportedOperation",
    "WebhookMalformed",
    "WebhookSignatureInvalid",
    "is_retryable",
    "maybe_committed",
]


class CarrierError(Exception):
    """Mixin carried by every carrier failure; `carrier` is the carrier code."""

    retryable: bool = False
    maybe_committed: bool = False
    carrier: str = ""


class CarrierUnavailable(CarrierError, Unavailable):
    """The carrier could not be reached or answered 429/5xx."""

    retryable = True

    def __init__(
        self,
        carrier: str,
        message: str,
        *,
        maybe_committed: bool,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(
            f"{carrier}: {message}",
            retry_after_seconds=retry_after_seconds,
            reason="CARRIER_UNAVAILABLE",
            metadata={"carrier": carrier},
        )
        self.carrier = carrier
        self.maybe_committed = maybe_committed


class CarrierTimeout(CarrierError, DeadlineExceeded):
    """No answer within the per-call timeout; the request may have reached the carrier."""

    retryable = True
    maybe_committed = True

    def __init__(self, carrier: str, operation: str, timeout_seconds: float | None) -> None:
        within = f" within {timeout_seconds:g}s" if timeout_seconds else ""
        super().__init__(
            f"{carrier}: {operation} got no answer{within}",
            reason="CARRIER_TIMEOUT",
            metadata={"carrier": carrier, "operation": operation},
        )
        self.carrier = carrier


class CarrierRejected(CarrierError, FailedPrecondition):
    """The carrier answered and refused (bad address, auth, unknown tracking number…)."""

    def __init__(self, carrier: str, messages: Sequence[str]) -> None:
        text = "; ".join(messages) or "the carrier refused the request"
        super().__init__(
            f"{carrier}: {text}", reason="CARRIER_REJECTED", metadata={"carrier": carrier}
        )
        self.carrier = carrier
        self.carrier_messages = tuple(messages)


class CarrierRequestInvalid(CarrierError, InvalidArgument):
    """Our input cannot be expressed as a request for this carrier; nothing was sent."""

    def __init__(self, carrier: str, why: str) -> None:
        super().__init__(f"{carrier}: {why}", reason="CARRIER_REQUEST_INVALID")
        self.carrier = carrier


class CircuitOpen(CarrierError, Unavailable):
    """The carrier's breaker is open: we fail fast instead of piling onto a sick carrier."""

    def __init__(self, carrier: str, retry_after_seconds: float) -> None:
        super().__init__(
            f"{carrier}: circuit open, retry in {retry_after_seconds:.1f}s",
            retry_after_seconds=retry_after_seconds,
            reason="CARRIER_CIRCUIT_OPEN",
            metadata={"carrier": carrier},
        )
        self.carrier = carrier


class UnsupportedOperation(CarrierError, FailedPrecondition):
    def __init__(self, carrier: str, operation: str) -> None:
        super().__init__(
            f"{carrier} does not support {operation}",
            reason="CARRIER_OPERATION_UNSUPPORTED",
            metadata={"carrier": carrier, "operation": operation},
        )
        self.carrier = carrier


class UnknownService(CarrierError, InvalidArgument):
    def __init__(self, carrier: str, service_code: str) -> None:
        super().__init__(
            f"{carrier} has no service {service_code!r}",
            reason="CARRIER_SERVICE_UNKNOWN",
            metadata={"carrier": carrier, "service_code": service_code},
        )
        self.carrier = carrier


class WebhookSignatureInvalid(CarrierError, Unauthenticated):
    """A push whose signature or timestamp does not check out; the body is not trusted."""

    def __init__(self, carrier: str, why: str) -> None:
        super().__init__(
            f"{carrier} webhook rejected: {why}",
            reason="WEBHOOK_SIGNATURE_INVALID",
            metadata={"carrier": carrier},
        )
        self.carrier = carrier


class WebhookMalformed(CarrierError, InvalidArgument):
    def __init__(self, carrier: str, why: str) -> None:
        super().__init__(f"{carrier} webhook body is malformed: {why}", reason="WEBHOOK_MALFORMED")
        self.carrier = carrier


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, CarrierError) and error.retryable


def maybe_committed(error: BaseException) -> bool:
    return isinstance(error, CarrierError) and error.maybe_committed
