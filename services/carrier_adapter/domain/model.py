"""Canonical carrier shapes: what every connector takes and returns, whatever the carrier.

Why dataclasses and not the protobuf messages: connectors need Decimal money, real `None` for
"the carrier did not say" (proto3 scalars cannot say that), and aware datetimes; and keeping
generated code out of the connector layer lets a contract move to v2 without touching carriers.
`services.carrier_adapter.adapters.contracts` is the one place that translates to the contracts.
Money, weights, dimensions and addresses are the kit's value types (services.kit.values).
Enum member names equal the proto value names without their prefix, which a test enforces.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.kit.values import Address, Dimensions, Money, Weight

__all__ = [
    "TERMINAL_STATUSES",
    "BookedLabel",
    "CancelRequest",
    "InboundWebhook",
    "IncidentReason",
    "LabelFormat",
    "LabelRequest",
    "Parcel",
    "RateQuote",
    "RateRequest",
    "ScanLocation",
    "ServiceLevel",
    "TrackingResult",
    "TrackingScan",
    "TrackingStatus",
    "UnmappedCode",
    "WebhookBatch",
]


class ServiceLevel(enum.StrEnum):
    """The speed of delivery a customer paid for (proto ServiceLevel without UNSPECIFIED)."""

    ECONOMY = "ECONOMY"
    STANDARD = "STANDARD"
    EXPEDITED = "EXPEDITED"
    OVERNIGHT = "OVERNIGHT"


class LabelFormat(enum.StrEnum):
    """Printable label document format."""

    PDF = "PDF"
    ZPL = "ZPL"
    PNG = "PNG"


class TrackingStatus(enum.StrEnum):
    """Canonical shipment status; UNKNOWN only ever means "carrier code with no mapping"."""

    PENDING = "PENDING"
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    DELIVERY_DELAYED = "DELIVERY_DELAYED"
    ON_HOLD = "ON_HOLD"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"


# Statuses after which a carrier will send nothing more worth polling for.
TERMINAL_STATUSES = frozenset({TrackingStatus.DELIVERED, TrackingStatus.CANCELLED})


class IncidentReason(enum.StrEnum):
    """Why a delivery failed, was delayed or held; absent (None) means no incident."""

    RECIPIENT_ABSENT = "RECIPIENT_ABSENT"
    ADDRESS_PROBLEM = "ADDRESS_PROBLEM"
    REFUSED = "REFUSED"
    DAMAGED = "DAMAGED"
    LOST = "LOST"
    WEATHER = "WEATHER"
    CUSTOMS = "CUSTOMS"
    CARRIER_DELAY = "CARRIER_DELAY"
    PAYMENT_DUE = "PAYMENT_DUE"
    OTHER = "OTHER"


@dataclass(frozen=True)
class Parcel:
    weight: Weight
    dimensions: Dimensions | None = None
    reference: str = ""


@dataclass(frozen=True)
class RateRequest:
    ship_from: Address
    ship_to: Address
    parcels: tuple[Parcel, ...]
    # None quotes every level the carrier offers.
    service_level: ServiceLevel | None = None


@dataclass(frozen=True)
class RateQuote:
    """One carrier's price for one service; crossdock ids (rte_…) are assigned by the service."""

    carrier: str
    carrier_account_id: str
    service_code: str
    service_name: str
    # None when the carrier service is not in the carrier's service table.
    service_level: ServiceLevel | None
    total_charge: Money
    transit_days: int | None = None
    estimated_delivery: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class LabelRequest:
    idempotency_key: str
    service_code: str
    ship_from: Address
    ship_to: Address
    parcels: tuple[Parcel, ...]
    label_format: LabelFormat = LabelFormat.PDF
    reference: str = ""
    # A return label: ship_from is the customer sending goods back, ship_to the warehouse.
    is_return: bool = False


@dataclass(frozen=True)
class BookedLabel:
    carrier: str
    carrier_account_id: str
    service_code: str
    tracking_number: str
    package_tracking_numbers: tuple[str, ...]
    label_format: LabelFormat
    document: bytes = field(repr=False)
    idempotency_key: str
    created_at: datetime
    quoted_charge: Money | None = None
    # The carrier's own id for voiding (often the tracking number).
    carrier_shipment_id: str = ""
    is_return: bool = False


@dataclass(frozen=True)
class CancelRequest:
    tracking_number: str
    service_code: str = ""
    carrier_shipment_id: str = ""


@dataclass(frozen=True)
class ScanLocation:
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country_code: str = ""


@dataclass(frozen=True)
class TrackingScan:
    """One carrier scan, normalized; the carrier's own codes are kept verbatim for audit."""

    tracking_number: str
    carrier: str
    status: TrackingStatus
    incident_reason: IncidentReason | None
    carrier_status_code: str
    carrier_incident_code: str
    description: str
    occurred_at: datetime
    location: ScanLocation | None
    signed_by: str
    dedupe_key: str


@dataclass(frozen=True)
class UnmappedCode:
    """A carrier code with no table entry; the service raises CarrierCodeUnmapped for it.

    kind "status": carrier_status_code had no mapping (the scan became UNKNOWN).
    kind "incident": carrier_incident_code had no mapping (reason OTHER); the status code is
    carried for context.
    """

    carrier: str
    tracking_number: str
    kind: Literal["status", "incident"]
    carrier_status_code: str
    carrier_incident_code: str
    description: str
    occurred_at: datetime


@dataclass(frozen=True)
class TrackingResult:
    carrier: str
    tracking_number: str
    scans: tuple[TrackingScan, ...]  # oldest first
    unmapped: tuple[UnmappedCode, ...] = ()


@dataclass(frozen=True)
class InboundWebhook:
    """A carrier push exactly as received: byte-exact body, header names lower-cased."""

    body: bytes
    headers: dict[str, str]
    content_type: str = "application/json"


@dataclass(frozen=True)
class WebhookBatch:
    carrier: str
    event_id: str
    results: tuple[TrackingResult, ...]
    # The carrier's final freight charge per tracking number, when the push carried one.
    final_charges: dict[str, Money] = field(default_factory=dict)
