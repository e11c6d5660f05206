"""Domain events inventory operations imply; the service layer maps each to an outbox row.

They mirror `crossdock/events/v1/inventory_events.proto` one to one, carrying domain values, not
protobuf messages. An operation that changes nothing (an idempotent replay) returns no events, so
a retried request never publishes twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.inventory.domain.model import (
    Adjustment,
    PickConfirmationLine,
    Position,
    Receipt,
    Reservation,
)


@dataclass(frozen=True)
class StockReserved:
    """Stock was held for an order at one location."""

    reservation: Reservation
    occurred_at: datetime


@dataclass(frozen=True)
class ReservationReleased:
    """A whole reservation was given back (a partial release that leaves stock held emits
    none: consumers read this event as "the reservation is gone")."""

    reservation: Reservation
    reason: str
    occurred_at: datetime


@dataclass(frozen=True)
class PickCompleted:
    """The warehouse confirmed a pick; lines carry the short quantities."""

    pick_id: str
    reservation_id: str
    order_id: str
    location_id: str
    lines: tuple[PickConfirmationLine, ...]
    occurred_at: datetime


@dataclass(frozen=True)
class StockAdjusted:
    """On hand changed outside an order (including the write-off of a short pick)."""

    adjustment: Adjustment
    position: Position
    occurred_at: datetime


@dataclass(frozen=True)
class StockReceived:
    """Stock arrived at a location; positions are after the receipt, one per received SKU."""

    receipt: Receipt
    positions: tuple[Position, ...]
    occurred_at: datetime


InventoryEvent = StockReserved | ReservationReleased | PickCompleted | StockAdjusted | StockReceived
