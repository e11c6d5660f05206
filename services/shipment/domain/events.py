"""What a shipment announces. adapters/contracts.py maps each to its crossdock.events.v1 message.

Events that carry the whole shipment hold a snapshot taken when the event was raised, so later
changes in the same unit of work do not leak into them: the aggregate's copy, or a delivery's
`ShipmentDocument` when the shipment was never decoded (app/tracking.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from services.kit.values import Money
from services.shipment.domain.model import IncidentReason, ServiceLevel, TrackingStatus

if TYPE_CHECKING:
    from services.shipment.domain.packing import PickedUnits
    from services.shipment.domain.shipment import Shipment


@dataclass(frozen=True)
class ShipmentRef:
    """Who a milestone is about, without the whole shipment."""

    shipment_id: str
    order_id: str
    partner_id: str
    carrier: str
    tracking_number: str
    return_id: str = ""  # set for a return parcel


@dataclass(frozen=True)
class ShipmentDocument:
    """A shipment as it stood, in its contract encoding (crossdock.shipment.v1.Shipment, as
    the store keeps it): what a delivery carries when the scans were taken without decoding
    the shipment. Why: decoding it to the aggregate and encoding it back cost most of a
    delivery's CPU."""

    shipment_id: str
    encoded: bytes


@dataclass(frozen=True)
class ShipmentCreated:
    shipment: Shipment
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentManifested:
    shipment: Shipment
    quoted_charge: Money | None
    service_level: ServiceLevel
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentPickedUp:
    shipment: ShipmentRef
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentOutForDelivery:
    shipment: ShipmentRef
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentDelivered:
    shipment: Shipment | ShipmentDocument
    final_charge: Money | None
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentDeliveryException:
    """A carrier exception scan, or a label booking that failed for good."""

    shipment: ShipmentRef
    incident_reason: IncidentReason
    description: str
    occurred_at: datetime
    status: TrackingStatus = TrackingStatus.UNSPECIFIED
    # Why a label booking failed, machine-readably (shipment.LABEL_OUTCOME_UNKNOWN); "" else.
    failure_code: str = ""


@dataclass(frozen=True)
class ShipmentReturnedToSender:
    """The carrier brought the parcels back: `items` return to stock at `location_id`."""

    shipment: ShipmentRef
    incident_reason: IncidentReason
    occurred_at: datetime
    location_id: str = ""
    items: tuple[PickedUnits, ...] = ()


@dataclass(frozen=True)
class ShipmentCancelled:
    """The shipment will not leave: `items` go back to stock at its location."""

    shipment: Shipment
    items: tuple[PickedUnits, ...]
    reason: str
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentLabelVoided:
    shipment: ShipmentRef
    label_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class ShipmentLabelVoidFailed:
    shipment: ShipmentRef
    label_id: str
    reason: str
    occurred_at: datetime


# -- return parcels: their own events, never the outbound ones above (see
# proto/crossdock/events/v1/shipment_events.proto for why) ------------------------------------


@dataclass(frozen=True)
class ReturnParcelManifested:
    shipment: Shipment
    quoted_charge: Money | None
    service_level: ServiceLevel
    occurred_at: datetime


@dataclass(frozen=True)
class ReturnParcelPickedUp:
    shipment: ShipmentRef
    occurred_at: datetime


@dataclass(frozen=True)
class ReturnParcelDelivered:
    shipment: Shipment | ShipmentDocument
    final_charge: Money | None
    occurred_at: datetime


@dataclass(frozen=True)
class ReturnParcelException:
    """A carrier exception scan, the parcel taken back to the customer, or a failed label."""

    shipment: ShipmentRef
    incident_reason: IncidentReason
    description: str
    occurred_at: datetime
    status: TrackingStatus = TrackingStatus.UNSPECIFIED
    # Why a label booking failed, machine-readably (shipment.LABEL_OUTCOME_UNKNOWN); "" else.
    failure_code: str = ""
