"""What flows in and out of the fulfillment saga, as plain dataclasses.

- Inputs are facts the saga consumes: answers to its commands (availability, reservation
  results) and events of other services (picks, shipments, invoices, stock arriving). The
  consumer/runner layer builds them from gRPC responses and decoded events.
- Commands are requests for other services that the runner executes, each idempotent (keyed)
  so it can be retried until it succeeds.
- Events are the order's own domain events; the service layer writes them to the outbox.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from services.order.domain.allocation_planner import Availability
from services.order.domain.model import (
    BackorderPolicy,
    FulfillmentStep,
    HeldLine,
    LineQuantity,
    Order,
    OrderLine,
    PickedLine,
    ReturnedShipmentResolution,
)


@dataclass(frozen=True)
class Context:
    """When and why an input is applied; `event_id`/`event_type` when it came from an event."""

    now: datetime
    correlation_id: str = ""
    event_id: str = ""
    event_type: str = ""


# -- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AvailabilityObserved:
    """The answer to RequestAvailability `request_id`: units per SKU per location."""

    request_id: int
    availability: Availability


@dataclass(frozen=True)
class ReservationMade:
    """The answer to ReserveStock `idempotency_key`; reservation_id is None if nothing was held."""

    idempotency_key: str
    reservation_id: str | None
    lines: tuple[HeldLine, ...]


@dataclass(frozen=True)
class ReservationFailed:
    """ReserveStock `idempotency_key` failed for good (e.g. the location was closed)."""

    idempotency_key: str
    reason: str


@dataclass(frozen=True)
class ReservationObserved:
    """Inventory says it holds a reservation for the order (`inventory.reserved`)."""

    reservation_id: str
    location_id: str


@dataclass(frozen=True)
class ReservationReleasedObserved:
    """Inventory released a reservation of the order (`inventory.reservation_released`)."""

    reservation_id: str
    reason: str


@dataclass(frozen=True)
class PickCompleted:
    """The warehouse confirmed the pick of a reservation, with any shorts."""

    pick_id: str
    reservation_id: str
    lines: tuple[PickedLine, ...]


@dataclass(frozen=True)
class ShipmentCreated:
    """Shipment created a shipment for some of the order's picked units."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True)
class ShipmentManifested:
    """A shipment's label is booked and the parcels were handed over: its units shipped."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True)
class ShipmentFailed:
    """A shipment could not be booked or delivered (label failure, delivery exception)."""

    shipment_id: str
    reason: str


@dataclass(frozen=True)
class ShipmentDelivered:
    """Every package of a shipment was delivered."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True)
class ShipmentCancelledObserved:
    """Shipment cancelled one of the order's shipments; `lines` go back to stock."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]
    reason: str


@dataclass(frozen=True)
class ShipmentReturnedToSender:
    """The carrier brought a shipment back to the warehouse it left from; inventory receives its
    units there. `lines` are the shipment's units per order line (from the event's items)."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]
    reason: str = ""


@dataclass(frozen=True)
class LabelVoided:
    """The label of a cancelled shipment was voided at the carrier."""

    shipment_id: str
    tracking_number: str


@dataclass(frozen=True)
class LabelVoidFailed:
    """Voiding the label of a cancelled shipment failed past its retries."""

    shipment_id: str
    tracking_number: str
    reason: str


@dataclass(frozen=True)
class InvoicePosted:
    """Billing posted the invoice of one shipment."""

    invoice_id: str
    shipment_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True)
class CreditNoteObserved:
    """Billing posted a credit note against one of the order's invoices; `return_id` names what
    caused it: a return (RMA), or a shipment returned to sender whose credit the order asked for."""

    credit_note_id: str
    invoice_id: str
    return_id: str


@dataclass(frozen=True)
class StockAvailable:
    """Availability of a SKU rose at a location (`inventory.received` or a positive adjustment).

    `source_id` is the receipt or adjustment id, so a redelivered event is recognised.
    """

    sku: str
    location_id: str
    source_id: str


SagaInput = (
    AvailabilityObserved
    | ReservationMade
    | ReservationFailed
    | ReservationObserved
    | ReservationReleasedObserved
    | PickCompleted
    | ShipmentCreated
    | ShipmentManifested
    | ShipmentFailed
    | ShipmentDelivered
    | ShipmentCancelledObserved
    | ShipmentReturnedToSender
    | LabelVoided
    | LabelVoidFailed
    | InvoicePosted
    | CreditNoteObserved
    | StockAvailable
)


# -- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestAvailability:
    """Ask inventory's GetAvailability for these SKUs; answer with AvailabilityObserved."""

    order_id: str
    request_id: int
    skus: tuple[str, ...]


@dataclass(frozen=True)
class ReserveStock:
    """Call inventory's ReserveStock (policy PARTIAL); answer with ReservationMade/Failed."""

    order_id: str
    location_id: str
    lines: tuple[HeldLine, ...]
    idempotency_key: str


@dataclass(frozen=True)
class ReleaseReservation:
    """Call inventory's ReleaseReservation (releasing twice is harmless)."""

    order_id: str
    reservation_id: str
    reason: str


@dataclass(frozen=True)
class CancelPickTask:
    """Withdraw the open pick task of a reservation released to the warehouse."""

    order_id: str
    reservation_id: str


@dataclass(frozen=True)
class RestockPicked:
    """Put picked units of a cancelled order back on the shelf (a RETURN receipt, keyed)."""

    order_id: str
    location_id: str
    lines: tuple[HeldLine, ...]
    idempotency_key: str


@dataclass(frozen=True)
class RetryShipment:
    """Ask shipment to retry a failed shipment (label booking), after an operator's retry."""

    order_id: str
    shipment_id: str


SagaCommand = (
    RequestAvailability
    | ReserveStock
    | ReleaseReservation
    | CancelPickTask
    | RestockPicked
    | RetryShipment
)


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderPlaced:
    """The order was accepted and its saga started.

    `order` is the placed aggregate itself: the contract message carries the whole order as it
    stands when the placing transition commits (it may already be allocated by then).
    """

    order_id: str
    partner_id: str
    lines: tuple[OrderLine, ...]
    occurred_at: datetime
    order: Order = field(compare=False, repr=False)


@dataclass(frozen=True)
class OrderAllocated:
    """Stock is reserved for every unit that ships now."""

    order_id: str
    partner_id: str
    reservation_ids: tuple[str, ...]
    lines: tuple[OrderLine, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class OrderBackordered:
    """Some units wait for stock."""

    order_id: str
    partner_id: str
    lines: tuple[OrderLine, ...]
    policy: BackorderPolicy
    occurred_at: datetime


@dataclass(frozen=True)
class OrderReleased:
    """The warehouse was told to pick these reservations."""

    order_id: str
    partner_id: str
    reservation_ids: tuple[str, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class OrderCancelled:
    """The order was cancelled; these reservations are being released."""

    order_id: str
    partner_id: str
    reason: str
    released_reservation_ids: tuple[str, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class OrderLinesCancelled:
    """Part of the order was cancelled (units not yet picked); `order` is the order after it."""

    order_id: str
    partner_id: str
    lines: tuple[HeldLine, ...]
    reason: str
    occurred_at: datetime
    order: Order = field(compare=False, repr=False)


@dataclass(frozen=True)
class ReturnedShipmentResolved:
    """An operator decided what happens to a shipment returned to sender: its units are planned
    again (RESHIP) or cancelled (CANCEL_AND_CREDIT); `order` is the order after it."""

    order_id: str
    partner_id: str
    shipment_id: str
    resolution: ReturnedShipmentResolution
    lines: tuple[HeldLine, ...]
    reason: str
    occurred_at: datetime
    order: Order = field(compare=False, repr=False)


@dataclass(frozen=True)
class ReturnedShipmentCreditRequested:
    """Billing is asked to credit the goods of an invoice whose shipment came back to sender.

    Published as `crossdock.return.received.v1`, the event billing credits goods on, with the
    shipment's id as the return's: billing credits the lines at their invoiced prices, once.
    """

    order_id: str
    partner_id: str
    shipment_id: str
    location_id: str
    invoice_id: str
    lines: tuple[HeldLine, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class OrderCompleted:
    """Every line was delivered and invoiced."""

    order_id: str
    partner_id: str
    invoice_ids: tuple[str, ...]
    occurred_at: datetime


class ExceptionClearance(enum.Enum):
    """How an order left EXCEPTION; values mirror OrderExceptionClearance in the contract."""

    RETRIED = 1
    PROGRESSED = 2
    CANCELLED = 3


@dataclass(frozen=True)
class OrderExceptionRaised:
    """The order went to EXCEPTION (episode `episode`), or stays in it for a new reason."""

    order_id: str
    partner_id: str
    episode: int
    step: FulfillmentStep
    reason: str
    shipment_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class OrderExceptionCleared:
    """The order left EXCEPTION: episode `episode` is over."""

    order_id: str
    partner_id: str
    episode: int
    clearance: ExceptionClearance
    step: FulfillmentStep
    reason: str
    occurred_at: datetime


OrderEvent = (
    OrderPlaced
    | OrderAllocated
    | OrderBackordered
    | OrderReleased
    | OrderCancelled
    | OrderLinesCancelled
    | ReturnedShipmentResolved
    | ReturnedShipmentCreditRequested
    | OrderCompleted
    | OrderExceptionRaised
    | OrderExceptionCleared
)
