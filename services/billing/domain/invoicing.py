"""Invoice and credit-note building: pure functions over plain values, no I/O.

One invoice per shipment: one goods line per order line shipped (quantities summed over the
shipment's packages, priced at the order's unit price), then one freight line. A credit note
for a return prices each returned unit at the unit price it was invoiced at.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal


class LineKind(enum.IntEnum):
    """Values match crossdock.billing.v1.InvoiceLineKind."""

    GOODS = 1
    FREIGHT = 2


class InvoicePolicy(enum.Enum):
    ON_DELIVERY = "on_delivery"
    ON_SHIP = "on_ship"


class PricesMissing(Exception):
    """A shipment or return refers to order lines whose prices are not known (yet)."""


@dataclass(frozen=True)
class OrderLinePrice:
    line_number: int
    sku: str
    unit_price: Decimal


@dataclass(frozen=True)
class Line:
    line_number: int
    kind: LineKind
    order_line_number: int
    sku: str
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class ShippedItem:
    order_line_number: int
    sku: str
    quantity: int


def total(lines: Iterable[Line]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))


def policy_for(
    partner_id: str,
    on_ship_partners: frozenset[str],
    customer_id: str = "",
    on_ship_customers: frozenset[str] = frozenset(),
) -> InvoicePolicy:
    """On ship when the partner or the order's customer is set so; on delivery otherwise."""
    if partner_id in on_ship_partners or (customer_id and customer_id in on_ship_customers):
        return InvoicePolicy.ON_SHIP
    return InvoicePolicy.ON_DELIVERY


def invoice_lines(
    prices: Mapping[int, OrderLinePrice], shipped: Iterable[ShippedItem], freight: Decimal
) -> list[Line]:
    """Goods lines (by order line number) then one freight line; raises PricesMissing."""
    quantities: dict[int, int] = {}
    for item in shipped:
        if item.quantity <= 0:
            continue
        quantities[item.order_line_number] = (
            quantities.get(item.order_line_number, 0) + item.quantity
        )
    missing = sorted(set(quantities) - set(prices))
    if missing:
        raise PricesMissing(f"no price for order lines {missing}")
    lines: list[Line] = []
    for number in sorted(quantities):
        price = prices[number]
        lines.append(
            Line(
                len(lines) + 1,
                LineKind.GOODS,
                number,
                price.sku,
                price.sku,
                quantities[number],
                price.unit_price,
            )
        )
    lines.append(Line(len(lines) + 1, LineKind.FREIGHT, 0, "", "Freight", 1, freight))
    return lines


def credit_lines(
    invoiced: Sequence[Line],
    returned: Iterable[ShippedItem],
    already_credited: Mapping[int, int] | None = None,
) -> list[Line]:
    """Credit lines for returned units, at their invoiced unit price; raises PricesMissing."""
    by_order_line = {x.order_line_number: x for x in invoiced if x.kind is LineKind.GOODS}
    lines: list[Line] = []
    for item in sorted(returned, key=lambda i: i.order_line_number):
        if item.quantity <= 0:
            continue
        source = by_order_line.get(item.order_line_number)
        if source is None:
            raise PricesMissing(f"order line {item.order_line_number} was not invoiced")
        # Never credit more units than were billed, counting earlier credit notes.
        left = source.quantity - (already_credited or {}).get(item.order_line_number, 0)
        quantity = min(item.quantity, left)
        if quantity <= 0:
            continue
        lines.append(
            Line(
                len(lines) + 1,
                LineKind.GOODS,
                source.order_line_number,
                source.sku,
                f"Return of {source.sku}",
                quantity,
                source.unit_price,
            )
        )
    return lines


def freight_to_bill(quoted: Decimal | None, final: Decimal | None) -> tuple[Decimal, bool]:
    """(amount to invoice, whether a FreightChargeFinalized is due): the final charge wins."""
    if final is None:
        return (quoted if quoted is not None else Decimal(0)), False
    return final, quoted is not None and final != quoted


def format_number(series: str, year: int, value: int) -> str:
    """`INV`, 2026, 1 → `INV-2026-000001`."""
    return f"{series}-{year}-{value:06d}"
