"""Builders shared by the order domain tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.order.domain import (
    Address,
    BackorderPolicy,
    CatalogItem,
    Context,
    Money,
    OrderInput,
    OrderLineInput,
    PartyRef,
    StaticCatalog,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
EAST, WEST, NORTH = "WH-EAST", "WH-WEST", "WH-NORTH"

CATALOG = StaticCatalog(
    [
        CatalogItem("WIDGET", active=True),
        CatalogItem("GADGET", active=True),
        CatalogItem("GIZMO", active=True),
        CatalogItem("OLD", active=False),
    ]
)

SHIP_TO = Address(
    name="Ada Lovelace",
    lines=("12 St James's Square",),
    city="London",
    postal_code="SW1Y 4JH",
    country_code="GB",
)


def usd(amount: str) -> Money:
    return Money("USD", Decimal(amount))


def order_input(
    *lines: tuple[str, int],
    policy: BackorderPolicy = BackorderPolicy.SHIP_AVAILABLE,
    external_id: str = "EXT-1",
) -> OrderInput:
    """lines are (sku, quantity) at $2.50 each."""
    return OrderInput(
        external_order_id=external_id,
        customer=PartyRef("CUST-9", "Ada"),
        ship_to=SHIP_TO,
        lines=tuple(OrderLineInput(sku, qty, usd("2.50")) for sku, qty in lines),
        currency_code="USD",
        backorder_policy=policy,
    )


def with_line(order: OrderInput, index: int, **changes: object) -> OrderInput:
    lines = list(order.lines)
    lines[index] = replace(lines[index], **changes)  # type: ignore[arg-type]
    return replace(order, lines=tuple(lines))


class Clock:
    """A manual clock handing out Contexts with a correlation id."""

    def __init__(self) -> None:
        self.now = T0

    def ctx(self, correlation_id: str = "corr-1", **kwargs: str) -> Context:
        return Context(self.now, correlation_id, **kwargs)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
