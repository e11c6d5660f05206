"""Order entities and value types, as plain dataclasses.

Enum values mirror the numbers in `crossdock/order/v1/order.proto` (and ServiceLevel those in
carrier.proto), so the api layer translates with `.value`; UNSPECIFIED members are left out
because the api resolves them (unspecified backorder policy means ship-available, unspecified
service level means standard).

`Order` is the one mutable aggregate: the saga updates it in place after validating an input
completely, so a rejected input leaves it untouched. Everything inside it is immutable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.kit.values import Address as Address  # re-exported: shared value types
from services.kit.values import Money as Money


class OrderStatus(enum.Enum):
    """Where an order is, as a partner sees it."""

    PLACED = 1
    BACKORDERED = 2
    ALLOCATED = 3
    RELEASED = 4
    PICKED = 5
    SHIPPED = 6
    DELIVERED = 7
    COMPLETED = 8
    CANCELLED = 9
    EXCEPTION = 10


TERMINAL_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})


class FulfillmentStep(enum.Enum):
    """The saga step an order is in."""

    RESERVE = 1
    RELEASE_TO_WAREHOUSE = 2
    AWAIT_PICK = 3
    AWAIT_SHIPMENT = 4
    AWAIT_DELIVERY = 5
    AWAIT_INVOICE = 6
    COMPLETE = 7


class BackorderPolicy(enum.Enum):
    """Ship what is in stock and backorder the rest, or hold until the order can ship complete."""

    SHIP_AVAILABLE = 1
    SHIP_COMPLETE = 2


class ServiceLevel(enum.Enum):
    """The delivery speed the customer chose."""

    ECONOMY = 1
    STANDARD = 2
    EXPEDITED = 3
    OVERNIGHT = 4


class TimelineEntryKind(enum.Enum):
    """What a timeline entry records."""

    STATUS_CHANGE = 1
    EVENT = 2
    EXCEPTION = 3


class HoldStatus(enum.Enum):
    """The order's view of one of its inventory reservations."""

    ACTIVE = 1
    RELEASED = 2
    CONSUMED = 3


class ReturnedShipmentResolution(enum.Enum):
    """What an operator decided for a shipment the carrier returned to sender."""

    RESHIP = 1
    CANCEL_AND_CREDIT = 2


@dataclass(frozen=True)
class PartyRef:
    """The customer, as the partner's own systems know it."""

    party_id: str
    name: str = ""
    email: str = ""


@dataclass(frozen=True)
class OrderLineInput:
    """One line of a new order."""

    sku: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class OrderInput:
    """What a partner says when placing an order."""

    external_order_id: str
    customer: PartyRef
    ship_to: Address
    lines: tuple[OrderLineInput, ...]
    currency_code: str
    service_level: ServiceLevel = ServiceLevel.STANDARD
    backorder_policy: BackorderPolicy = BackorderPolicy.SHIP_AVAILABLE


@dataclass(frozen=True)
class OrderLine:
    """One SKU of an order with its fulfillment progress (the proto's OrderLine figures).

    The figures are derived from the saga's records after every transition, never edited
    directly, so they cannot drift from the reservations, picks, shipments and invoices.
    """

    line_number: int
    sku: str
    unit_price: Money
    quantity_ordered: int
    quantity_allocated: int = 0
    quantity_backordered: int = 0
    quantity_picked: int = 0
    quantity_shipped: int = 0
    quantity_delivered: int = 0
    quantity_invoiced: int = 0
    quantity_cancelled: int = 0
    quantity_returned: int = 0


@dataclass(frozen=True)
class LineQuantity:
    """A quantity of one order line (on a shipment, invoice or reservation result)."""

    line_number: int
    quantity: int


@dataclass(frozen=True)
class HeldLine:
    """The units of one order line a reservation holds (or is asked to hold)."""

    line_number: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class PendingReservation:
    """A ReserveStock command sent and not answered yet; retried with the same key."""

    idempotency_key: str
    location_id: str
    lines: tuple[HeldLine, ...]


@dataclass(frozen=True)
class OrderReservation:
    """A reservation inventory made for this order, as the order tracks it."""

    reservation_id: str
    location_id: str
    lines: tuple[HeldLine, ...]
    status: HoldStatus = HoldStatus.ACTIVE
    released_to_warehouse: bool = False
    idempotency_key: str = ""


@dataclass(frozen=True)
class PickedLine:
    """What the warehouse picked and found short for one order line."""

    line_number: int
    sku: str
    quantity_picked: int
    quantity_short: int = 0


@dataclass(frozen=True)
class PickRecord:
    """A confirmed pick of one of the order's reservations."""

    pick_id: str
    reservation_id: str
    location_id: str
    lines: tuple[PickedLine, ...]


@dataclass(frozen=True)
class ShipmentRecord:
    """A shipment of the order and how far it got."""

    shipment_id: str
    location_id: str
    lines: tuple[LineQuantity, ...]
    manifested: bool = False
    delivered: bool = False
    failure_reason: str = ""
    # Cancelled before pickup: its units went back to stock, so they count as neither shipped
    # nor delivered.
    cancelled: bool = False
    # Returned to sender by the carrier: its units are back at the warehouse, so they count as
    # neither shipped nor delivered, and wait for an operator's `resolution` (reship them, or
    # cancel and credit them); until then they stay picked.
    returned: bool = False
    resolution: ReturnedShipmentResolution | None = None


@dataclass(frozen=True)
class InvoiceRecord:
    """A posted invoice for one shipment of the order."""

    invoice_id: str
    shipment_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True)
class ExceptionState:
    """Why the order is in EXCEPTION and which step failed; cleared by retry or by progress.

    `shipment_id` is set when one shipment failed: the exception clears when that shipment
    moves on, whatever the rest of the order does.
    """

    step: FulfillmentStep
    reason: str
    since: datetime
    shipment_id: str = ""
    # Which of the order's exceptions this is (1, 2, ...), numbered when the saga call that
    # raised it finishes (exception_episodes.py); 0 until then, and in documents that predate it.
    episode: int = 0


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an order (GetOrderTimeline)."""

    occurred_at: datetime
    kind: TimelineEntryKind
    step: FulfillmentStep
    detail: str
    from_status: OrderStatus | None = None
    to_status: OrderStatus | None = None
    event_type: str = ""
    event_id: str = ""
    correlation_id: str = ""
    # For a status change: the name of the transition in the status table (domain/states.py).
    transition: str = ""


@dataclass
class Order:
    """An order with its fulfillment saga state, persisted as one aggregate."""

    order_id: str
    partner_id: str
    external_order_id: str
    customer: PartyRef
    ship_to: Address
    currency_code: str
    service_level: ServiceLevel
    backorder_policy: BackorderPolicy
    lines: list[OrderLine]
    fingerprint: str
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.PLACED
    step: FulfillmentStep = FulfillmentStep.RESERVE
    exception: ExceptionState | None = None
    # How many exceptions the order has had: the last one's episode.
    exception_episodes: int = 0
    cancel_reason: str = ""
    # Deadline bookkeeping: the key names what the order is waiting for ("AWAIT_PICK", ...).
    deadline_key: str = ""
    step_entered_at: datetime | None = None
    step_deadline: datetime | None = None
    # Saga records; the line figures and the status are derived from them.
    allocation_round: int = 0
    availability_requests: int = 0
    availability_request: int | None = None
    # Stock arrived while a round was in flight; its snapshot may predate it, so plan again.
    replan_requested: bool = False
    pending: dict[str, PendingReservation] = field(default_factory=dict)
    reservations: dict[str, OrderReservation] = field(default_factory=dict)
    backordered: dict[int, int] = field(default_factory=dict)
    picks: dict[str, PickRecord] = field(default_factory=dict)
    shipments: dict[str, ShipmentRecord] = field(default_factory=dict)
    invoices: dict[str, InvoiceRecord] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        """COMPLETED and CANCELLED never change again."""
        return self.status in TERMINAL_STATUSES

    @property
    def exception_reason(self) -> str:
        """The proto's exception_reason: empty unless the order is in EXCEPTION."""
        return self.exception.reason if self.exception else ""

    @property
    def subtotal(self) -> Money:
        """The sum of quantity ordered times unit price over the lines."""
        total = sum(
            (line.unit_price.amount * line.quantity_ordered for line in self.lines), Decimal(0)
        )
        return Money(self.currency_code, total)

    def line(self, line_number: int) -> OrderLine:
        """The line with this number; KeyError if there is none."""
        for line in self.lines:
            if line.line_number == line_number:
                return line
        raise KeyError(line_number)

    def as_input(self) -> OrderInput:
        """The request this order was created from (for idempotent CreateOrder replays)."""
        return OrderInput(
            external_order_id=self.external_order_id,
            customer=self.customer,
            ship_to=self.ship_to,
            lines=tuple(
                OrderLineInput(line.sku, line.quantity_ordered, line.unit_price)
                for line in self.lines
            ),
            currency_code=self.currency_code,
            service_level=self.service_level,
            backorder_policy=self.backorder_policy,
        )
