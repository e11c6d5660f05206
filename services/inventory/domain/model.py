"""Inventory entities and value types, as plain frozen dataclasses.

Enum values mirror the numbers in `crossdock/inventory/v1/inventory.proto`, so the api layer
translates with `ProtoEnum(domain.value)` and back; the UNSPECIFIED members are left out because
the api layer resolves them (e.g. an unspecified reservation policy means all-or-nothing).

Everything is immutable: an operation computes new values and hands them to the repository, so a
rejected operation can never leave a half-changed object behind in a shared in-memory state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

# Re-exported: the shared value types (exact Decimal measures, StrEnum units).
from services.kit.values import Address as Address
from services.kit.values import Dimensions as Dimensions
from services.kit.values import DimensionUnit as DimensionUnit
from services.kit.values import Money as Money
from services.kit.values import Weight as Weight
from services.kit.values import WeightUnit as WeightUnit


class UnitOfMeasure(enum.Enum):
    """The unit stock of an item is counted in."""

    EACH = 1
    PACK = 2
    CASE = 3
    PALLET = 4


class ReservationPolicy(enum.Enum):
    """What to do when not all requested stock is available."""

    ALL_OR_NOTHING = 1
    PARTIAL = 2


class ReservationStatus(enum.Enum):
    """Where a reservation is in its life."""

    ACTIVE = 1
    RELEASED = 2
    CONSUMED = 3


class PickStatus(enum.Enum):
    """Where a pick task is in its life."""

    OPEN = 1
    COMPLETED = 2
    CANCELLED = 3


class AdjustmentReason(enum.Enum):
    """Why on hand changed outside an order."""

    CYCLE_COUNT = 1
    DAMAGE = 2
    FOUND = 3
    SHRINKAGE = 4


class ReceiptSource(enum.Enum):
    """What a receipt of stock is against."""

    PURCHASE_ORDER = 1
    TRANSFER = 2
    RETURN = 3
    CANCELLATION = 4
    RETURNED_TO_SENDER = 5


class StockCondition(enum.Enum):
    """Whether received units can be sold again; only SELLABLE units count as on hand."""

    SELLABLE = 1
    DAMAGED = 2
    SCRAP = 3
    QUARANTINE = 4


class MovementKind(enum.Enum):
    """The only three ways stock may change; the stock ledger records which one did."""

    RECEIPT = 1
    ADJUSTMENT = 2
    PICK = 3


@dataclass(frozen=True)
class Item:
    """A stock-keeping unit in the item master."""

    sku: str
    description: str
    unit_of_measure: UnitOfMeasure = UnitOfMeasure.EACH
    dimensions: Dimensions | None = None  # of one unit as packed for shipping
    weight: Weight | None = None  # gross, of one unit as packed for shipping
    hazmat: bool = False
    lot_controlled: bool = False
    active: bool = True
    unit_price: Money | None = None


@dataclass(frozen=True)
class Location:
    """A warehouse or other stocking point; inactive ones take no new reservations."""

    location_id: str
    name: str
    address: Address | None = None
    active: bool = True


@dataclass(frozen=True)
class Position:
    """The stock of one SKU at one location.

    `version` counts saves; a SQL store turns it into a compare-and-set so two writers racing for
    the last unit cannot both win (the loser gets kit `Conflict` and retries the whole operation).
    `non_sellable` units (damaged, scrap, quarantine) are held apart: they are not on hand, so
    they are never available and never reserved.
    """

    sku: str
    location_id: str
    on_hand: int = 0
    reserved: int = 0
    version: int = 0
    updated_at: datetime | None = None
    non_sellable: int = 0

    @property
    def available(self) -> int:
        """What new orders may still take: on hand minus what is promised."""
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class ReservationLine:
    """The quantity of one SKU a reservation holds for one order line."""

    order_line_number: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class Reservation:
    """Stock held at one location for one order."""

    reservation_id: str
    order_id: str
    location_id: str
    status: ReservationStatus
    lines: tuple[ReservationLine, ...]
    created_at: datetime
    idempotency_key: str = ""
    release_reason: str = ""
    updated_at: datetime | None = None

    def quantity_of(self, sku: str) -> int:
        """Units of `sku` this reservation holds (0 when it holds none)."""
        return sum(line.quantity for line in self.lines if line.sku == sku)


@dataclass(frozen=True)
class Shortfall:
    """A reservation line not held in full, and by how many units."""

    order_line_number: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class ReserveAttempt:
    """The remembered answer to one ReserveStock idempotency key, success or not.

    Remembering failures too means a retried request gets the same answer even if stock arrived
    in between; callers that want a fresh attempt use a fresh key.
    """

    idempotency_key: str
    request_fingerprint: str
    order_id: str
    location_id: str
    reservation_id: str | None
    shortfalls: tuple[Shortfall, ...]
    created_at: datetime


@dataclass(frozen=True)
class PickConfirmationLine:
    """What the warehouse actually picked for one reservation line."""

    order_line_number: int
    sku: str
    quantity_picked: int
    quantity_short: int = 0
    lot: str = ""


@dataclass(frozen=True)
class PickTask:
    """The warehouse's instruction to pick one reservation; `confirmed_lines` once completed."""

    pick_id: str
    reservation_id: str
    order_id: str
    location_id: str
    status: PickStatus
    lines: tuple[ReservationLine, ...]
    created_at: datetime
    confirmed_lines: tuple[PickConfirmationLine, ...] = ()
    completed_at: datetime | None = None


@dataclass(frozen=True)
class Adjustment:
    """A signed change to on hand with its reason.

    `pick_id` is set when the adjustment writes off the short quantity of a pick confirmation,
    so every unit that vanished can be traced to the pick that found it missing.
    """

    adjustment_id: str
    sku: str
    location_id: str
    quantity_delta: int
    reason: AdjustmentReason
    note: str
    created_at: datetime
    idempotency_key: str = ""
    request_fingerprint: str = ""
    pick_id: str = ""


@dataclass(frozen=True)
class ReceiptLine:
    """The quantity of one SKU received, with its lot for lot-controlled items.

    `condition` says whether the units go to on hand or are held apart as non-sellable;
    `reason` says why they are non-sellable.
    """

    sku: str
    quantity: int
    lot: str = ""
    condition: StockCondition = StockCondition.SELLABLE
    reason: str = ""

    @property
    def sellable(self) -> bool:
        return self.condition is StockCondition.SELLABLE


@dataclass(frozen=True)
class Receipt:
    """Stock arriving at a location against a purchase order, transfer or return."""

    receipt_id: str
    location_id: str
    source: ReceiptSource
    source_reference: str
    lines: tuple[ReceiptLine, ...]
    created_at: datetime
    idempotency_key: str = ""
    request_fingerprint: str = ""


@dataclass(frozen=True)
class Movement:
    """One row of the stock ledger. Per position, Σ quantity_delta of the sellable movements
    always equals its on hand, and of the others its non-sellable quantity."""

    sku: str
    location_id: str
    quantity_delta: int
    kind: MovementKind
    reference_id: str
    occurred_at: datetime
    sellable: bool = True


@dataclass(frozen=True)
class ReleaseAttempt:
    """The remembered answer to one partial-release idempotency key: the reservation's status
    and lines right after that release, so a retry gets the same answer and changes nothing."""

    idempotency_key: str
    request_fingerprint: str
    reservation_id: str
    status: ReservationStatus
    lines: tuple[ReservationLine, ...]
    reason: str
    created_at: datetime
