"""Builders shared by the inventory domain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.inventory.domain import (
    AdjustmentReason,
    AdjustStock,
    InMemoryInventory,
    Item,
    Location,
    ReceiptLine,
    ReceiptSource,
    ReceiveStock,
    ReservationPolicy,
    ReserveLine,
    ReserveStock,
    SequentialIds,
    StockCondition,
    adjust,
    receive,
)
from services.inventory.domain.repository import seed

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EAST, WEST, CLOSED = "WH-EAST", "WH-WEST", "WH-CLOSED"
ORDER_A, ORDER_B = "ord_A", "ord_B"


class World:
    """A seeded in-memory inventory with a clock, for one test."""

    def __init__(self) -> None:
        self.repo = InMemoryInventory()
        self.ids = SequentialIds()
        self.now = T0
        self._keys = 0
        seed(
            self.repo,
            [
                Item("WIDGET", "Widget"),
                Item("GADGET", "Gadget"),
                Item("SERUM", "Serum", lot_controlled=True),
                Item("OLD", "Discontinued", active=False),
            ],
            [
                Location(EAST, "East"),
                Location(WEST, "West"),
                Location(CLOSED, "Closed", active=False),
            ],
        )

    def tick(self, minutes: int = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    def key(self, prefix: str = "key") -> str:
        self._keys += 1
        return f"{prefix}-{self._keys:06d}"

    def receive(
        self,
        sku: str,
        location: str,
        quantity: int,
        lot: str = "",
        condition: StockCondition = StockCondition.SELLABLE,
    ) -> None:
        reason = "" if condition is StockCondition.SELLABLE else "dented"
        request = ReceiveStock(
            location,
            ReceiptSource.PURCHASE_ORDER,
            "PO-1",
            (ReceiptLine(sku, quantity, lot, condition, reason),),
            self.key(),
        )
        receive(self.repo, self.ids, request, self.tick())

    def adjust_request(
        self, sku: str, location: str, delta: int, reason: AdjustmentReason, key: str | None = None
    ) -> AdjustStock:
        return AdjustStock(sku, location, delta, reason, "counted", key or self.key())

    def adjust(self, sku: str, location: str, delta: int, reason: AdjustmentReason) -> None:
        adjust(self.repo, self.ids, self.adjust_request(sku, location, delta, reason), self.tick())


def reserve_request(
    order_id: str,
    location: str,
    *lines: tuple[str, int],
    policy: ReservationPolicy = ReservationPolicy.ALL_OR_NOTHING,
    key: str = "reserve-key-1",
) -> ReserveStock:
    """lines are (sku, quantity), numbered from 1."""
    return ReserveStock(
        order_id,
        location,
        tuple(ReserveLine(n, sku, qty) for n, (sku, qty) in enumerate(lines, start=1)),
        policy,
        key,
    )
