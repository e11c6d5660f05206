"""order_totals' rules: a finished order's lines, shipments, invoices and credit notes agree, in
units and money. Pure functions over plain values (the check reads them from the owners' RPCs).

The money rules come from the owners' domains:
- order: a COMPLETED order delivered every unit ordered net of its cancellations; a cancelled
  order cancelled every unit (order.domain.cancellation); a shipment returned to sender and
  cancelled-and-credited adds its units to the line's cancellations;
- billing: one invoice per shipment (posted on delivery, or on ship for partners billed that
  way), one goods line per order line the shipment carries, at the order's unit price, then
  one freight line (the carrier's charge, which the order does not know, so it is taken as
  billed); a credit note credits units of ONE invoice at the unit price that invoice billed,
  never more than it billed; the invoice of a shipment that was cancelled or returned to sender
  is credited in full for its goods, and its freight stays billed unless the partner's refund
  policy refunds it (the carrier carried the parcel). Amounts are exact decimals: quantity times
  unit price, never rounded, so totals compare exactly.

Rules, each violation one sentence naming its numbers (`violations`):
1. per order line, units on live shipments (not cancelled, not returned to sender) never exceed
   the units ordered net of cancellations; a COMPLETED order's delivered units equal them;
2. each delivered shipment has exactly one invoice; an invoice bills a shipment of the order, in
   the order's currency, its goods exactly the shipment's units at the order's prices, and its
   total is the sum of its lines;
3. a credit note credits an invoice of the order, in its currency, at its prices, its total the
   sum of its lines; an invoice's credit notes never credit more units or more money than it
   billed;
4. the goods of an invoice whose shipment was cancelled or returned to sender are credited in
   full; a CANCELLED order that delivered nothing nets its goods to zero (one sentence for the
   order instead of one per invoice).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal


class OrderState(enum.Enum):
    """The finished states order_totals judges."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ShipmentState(enum.Enum):
    """What a shipment's units are, for the totals."""

    # Carrying units, not delivered yet (manifested, in transit, label failed, ...).
    LIVE = "live"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURNED = "returned to sender"


@dataclass(frozen=True)
class OrderLine:
    line_number: int
    sku: str
    ordered: int
    cancelled: int
    unit_price: Decimal

    @property
    def net(self) -> int:
        return self.ordered - self.cancelled


@dataclass(frozen=True)
class Order:
    order_id: str
    state: OrderState
    currency: str
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class Shipment:
    """An outbound shipment and its units per order line (summed over its packages)."""

    shipment_id: str
    state: ShipmentState
    units: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentLine:
    """One invoice or credit note line; order_line_number 0 and goods False for freight."""

    goods: bool
    order_line_number: int
    quantity: int
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    # What evidence calls it: its number, or its id before it has one.
    label: str
    shipment_id: str
    currency: str
    lines: tuple[DocumentLine, ...]
    total: Decimal


@dataclass(frozen=True)
class CreditNote:
    label: str
    invoice_id: str
    currency: str
    lines: tuple[DocumentLine, ...]
    total: Decimal


def money(amount: Decimal) -> str:
    """An amount as evidence shows it: at least two decimals, never rounded."""
    return f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount:f}"


def _goods_units(lines: Iterable[DocumentLine]) -> dict[int, int]:
    units: dict[int, int] = {}
    for line in lines:
        if line.goods:
            units[line.order_line_number] = units.get(line.order_line_number, 0) + line.quantity
    return units


def _goods_amount(lines: Iterable[DocumentLine]) -> Decimal:
    return sum((line.amount for line in lines if line.goods), Decimal(0))


def _units_text(units: Mapping[int, int]) -> str:
    return ", ".join(f"line {n} x{q}" for n, q in sorted(units.items()) if q) or "nothing"


def violations(
    order: Order,
    shipments: Sequence[Shipment],
    invoices: Sequence[Invoice],
    credit_notes: Sequence[CreditNote],
) -> list[str]:
    """Every rule the order's documents break (module docstring), in rule order; empty when
    its totals agree."""
    return [
        *_quantities(order, shipments),
        *_invoices(order, shipments, invoices),
        *_credits(invoices, credit_notes),
        *_settled(order, shipments, invoices, credit_notes),
    ]


def _quantities(order: Order, shipments: Sequence[Shipment]) -> list[str]:
    found: list[str] = []
    lines = {line.line_number: line for line in order.lines}
    shipped: dict[int, int] = {}
    delivered: dict[int, int] = {}
    for shipment in shipments:
        for number, units in sorted(shipment.units.items()):
            if number not in lines:
                found.append(
                    f"shipment {shipment.shipment_id} carries {units} units of order line "
                    f"{number}, which the order does not have"
                )
                continue
            if shipment.state in (ShipmentState.LIVE, ShipmentState.DELIVERED):
                shipped[number] = shipped.get(number, 0) + units
            if shipment.state is ShipmentState.DELIVERED:
                delivered[number] = delivered.get(number, 0) + units
    for line in order.lines:
        what = f"line {line.line_number} ({line.sku})"
        net = f"ordered {line.ordered} net of {line.cancelled} cancelled"
        on_shipments = shipped.get(line.line_number, 0)
        if on_shipments > line.net:
            found.append(f"{what}: {on_shipments} units shipped, {net}")
        got = delivered.get(line.line_number, 0)
        if order.state is OrderState.COMPLETED and got != line.net:
            found.append(f"{what}: {got} units delivered, {net} (completed order)")
    return found


def _invoices(
    order: Order, shipments: Sequence[Shipment], invoices: Sequence[Invoice]
) -> list[str]:
    found: list[str] = []
    by_shipment: dict[str, list[Invoice]] = {}
    for invoice in invoices:
        by_shipment.setdefault(invoice.shipment_id, []).append(invoice)
    for each in shipments:
        billed = sorted(i.label for i in by_shipment.get(each.shipment_id, []))
        if each.state is ShipmentState.DELIVERED and len(billed) != 1:
            found.append(
                f"shipment {each.shipment_id} delivered, "
                + (f"{len(billed)} invoices: {', '.join(billed)}" if billed else "no invoice")
            )
    shipment_of = {s.shipment_id: s for s in shipments}
    prices = {line.line_number: line.unit_price for line in order.lines}
    for invoice in sorted(invoices, key=lambda i: i.label):
        shipment = shipment_of.get(invoice.shipment_id)
        if shipment is None:
            found.append(
                f"invoice {invoice.label} bills shipment {invoice.shipment_id}, not an outbound "
                "shipment of the order"
            )
        if invoice.currency != order.currency:
            found.append(
                f"invoice {invoice.label} in {invoice.currency}, order in {order.currency}"
            )
        found += _arithmetic(f"invoice {invoice.label}", invoice.lines, invoice.total)
        if shipment is None:
            continue
        billed_units = _goods_units(invoice.lines)
        expected = sum(
            (prices.get(n, Decimal(0)) * q for n, q in shipment.units.items()), Decimal(0)
        )
        goods = _goods_amount(invoice.lines)
        mispriced = sorted(
            line.order_line_number
            for line in invoice.lines
            if line.goods and line.unit_price != prices.get(line.order_line_number)
        )
        wanted = {n: q for n, q in shipment.units.items() if q}
        if billed_units != wanted or goods != expected or mispriced:
            found.append(
                f"invoice {invoice.label} bills goods {money(goods)} "
                f"({_units_text(billed_units)}), shipment {shipment.shipment_id} carries "
                f"{_units_text(wanted)}, {money(expected)} at the order's prices"
            )
    return found


def _arithmetic(what: str, lines: Sequence[DocumentLine], total: Decimal) -> list[str]:
    found = [
        f"{what} line {n}: {line.quantity} x {money(line.unit_price)} is "
        f"{money(line.quantity * line.unit_price)}, not {money(line.amount)}"
        for n, line in enumerate(lines, start=1)
        if line.amount != line.quantity * line.unit_price
    ]
    summed = sum((line.amount for line in lines), Decimal(0))
    if summed != total:
        found.append(f"{what} total {money(total)}, its lines sum {money(summed)}")
    return found


def _credits(invoices: Sequence[Invoice], credit_notes: Sequence[CreditNote]) -> list[str]:
    found: list[str] = []
    by_id = {invoice.invoice_id: invoice for invoice in invoices}
    notes_of: dict[str, list[CreditNote]] = {}
    for note in sorted(credit_notes, key=lambda n: n.label):
        invoice = by_id.get(note.invoice_id)
        found += _arithmetic(f"credit note {note.label}", note.lines, note.total)
        if invoice is None:
            found.append(
                f"credit note {note.label} credits invoice {note.invoice_id}, not an invoice "
                "of the order"
            )
            continue
        notes_of.setdefault(invoice.invoice_id, []).append(note)
        if note.currency != invoice.currency:
            found.append(
                f"credit note {note.label} in {note.currency}, invoice {invoice.label} in "
                f"{invoice.currency}"
            )
        prices = {x.order_line_number: x.unit_price for x in invoice.lines if x.goods}
        for line in note.lines:
            billed = prices.get(line.order_line_number)
            if line.goods and billed is not None and line.unit_price != billed:
                found.append(
                    f"credit note {note.label} credits line {line.order_line_number} at "
                    f"{money(line.unit_price)}, invoice {invoice.label} billed {money(billed)}"
                )
    for invoice in sorted(invoices, key=lambda i: i.label):
        notes = notes_of.get(invoice.invoice_id, [])
        if not notes:
            continue
        billed_units = _goods_units(invoice.lines)
        credited_units = _goods_units(line for note in notes for line in note.lines)
        for number, units in sorted(credited_units.items()):
            if units > billed_units.get(number, 0):
                found.append(
                    f"invoice {invoice.label} line {number}: {units} units credited, "
                    f"{billed_units.get(number, 0)} invoiced"
                )
        credited = sum((note.total for note in notes), Decimal(0))
        if credited > invoice.total:
            found.append(
                f"invoice {invoice.label}: {money(credited)} credited by "
                f"{', '.join(n.label for n in notes)}, {money(invoice.total)} invoiced"
            )
    return found


def _settled(
    order: Order,
    shipments: Sequence[Shipment],
    invoices: Sequence[Invoice],
    credit_notes: Sequence[CreditNote],
) -> list[str]:
    credited: dict[str, Decimal] = {}
    for note in credit_notes:
        credited[note.invoice_id] = credited.get(note.invoice_id, Decimal(0)) + _goods_amount(
            note.lines
        )
    if order.state is OrderState.CANCELLED and not any(
        s.state is ShipmentState.DELIVERED for s in shipments
    ):
        goods = sum((_goods_amount(i.lines) for i in invoices), Decimal(0))
        back = sum(credited.values(), Decimal(0))
        if goods != back:
            return [
                f"cancelled order, nothing delivered: goods invoiced {money(goods)}, credited "
                f"{money(back)}, net {money(goods - back)} {order.currency}"
            ]
        return []
    found: list[str] = []
    state_of = {s.shipment_id: s.state for s in shipments}
    for invoice in sorted(invoices, key=lambda i: i.label):
        state = state_of.get(invoice.shipment_id)
        if state not in (ShipmentState.CANCELLED, ShipmentState.RETURNED):
            continue
        goods = _goods_amount(invoice.lines)
        back = credited.get(invoice.invoice_id, Decimal(0))
        if goods != back:
            found.append(
                f"invoice {invoice.label} of shipment {invoice.shipment_id} ({state.value}): "
                f"goods {money(goods)} invoiced, {money(back)} credited"
            )
    return found
