"""The connector interface every carrier implements, in canonical domain types only.

The service never sees a carrier's wire format: it calls these operations, and gets domain
dataclasses or a `CarrierError` (see domain.errors for what a caller may retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelRequest,
    RateQuote,
    RateRequest,
    TrackingResult,
    WebhookBatch,
)

__all__ = ["Capabilities", "CarrierConnector"]


@dataclass(frozen=True)
class Capabilities:
    # The carrier pushes scans (webhooks); otherwise the service polls (domain.polling).
    push_tracking: bool = False
    # The carrier dedupes bookings by our idempotency key, so a booking may be retried after a
    # timeout; otherwise a maybe-committed booking must be reconciled, never blindly re-sent.
    idempotent_booking: bool = False
    cancel_label: bool = True
    # The carrier books return labels (customer → warehouse, billed to our account); a connector
    # without it refuses them with UnsupportedOperation before sending anything.
    return_label: bool = False


@runtime_checkable
class CarrierConnector(Protocol):
    """One configured carrier account."""

    @property
    def carrier(self) -> str:
        """Carrier code, e.g. "ups"."""
        ...

    @property
    def account_id(self) -> str:
        """The configured carrier account this connector speaks for."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        """Quotes for every service this account offers (filtered by level when one is set)."""
        ...

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        """Buy a label. `request.idempotency_key` identifies the booking for the caller."""
        ...

    async def cancel_label(self, request: CancelRequest) -> None:
        """Void a label that has not moved; raises CarrierRejected when the carrier refuses."""
        ...

    async def find_label(self, idempotency_key: str) -> BookedLabel | None:
        """The live label the carrier booked under our key (its customer reference search),
        None when it booked none; UnsupportedOperation when the carrier has no such search."""
        ...

    async def track(self, tracking_number: str) -> TrackingResult:
        """The carrier's scans for one tracking number, normalized, oldest first."""
        ...

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        """Verify a push's signature, then normalize its scans; no I/O.

        Raises WebhookSignatureInvalid (untrusted), WebhookMalformed, or UnsupportedOperation
        for carriers without push.
        """
        ...
