"""order_totals' rules on hand-built orders, shipments, invoices and credit notes: agreeing
totals are no violation; each broken rule is one sentence naming its numbers."""

from __future__ import annotations

from decimal import Decimal

from services.control_tower.domain.order_totals import (
    CreditNote,
    DocumentLine,
    Invoice,
    Order,
    OrderLine,
    OrderState,
    Shipment,
    ShipmentState,
    money,
    violations,
)

D = Decimal
KETTLE = OrderLine(1, "KETTLE", 2, 0, D("40.00"))
MUG = OrderLine(2, "MUG", 3, 0, D("9.50"))


def order(state: OrderState = OrderState.COMPLETED, *lines: OrderLine) -> Order:
    return Order("ord_1", state, "USD", lines or (KETTLE, MUG))


def goods(line: int, quantity: int, price: str) -> DocumentLine:
    return DocumentLine(True, line, quantity, D(price), D(price) * quantity)


def freight(amount: str) -> DocumentLine:
    return DocumentLine(False, 0, 1, D(amount), D(amount))


def invoice(label: str, shipment_id: str, *lines: DocumentLine, total: str = "") -> Invoice:
    summed = sum((x.amount for x in lines), D(0))
    return Invoice(f"inv_{label}", label, shipment_id, "USD", lines, D(total) if total else summed)


def note(label: str, invoice_label: str, *lines: DocumentLine) -> CreditNote:
    return CreditNote(
        label, f"inv_{invoice_label}", "USD", lines, sum((x.amount for x in lines), D(0))
    )


def delivered(shipment_id: str, **units: int) -> Shipment:
    return shipment(shipment_id, ShipmentState.DELIVERED, **units)


def shipment(shipment_id: str, state: ShipmentState, **units: int) -> Shipment:
    return Shipment(shipment_id, state, {int(n[1:]): q for n, q in units.items()})


def test_a_completed_order_split_in_two_shipments_with_a_partial_return_agrees() -> None:
    shipments = [delivered("shp_a", l1=2, l2=1), delivered("shp_b", l2=2)]
    invoices = [
        invoice("INV-1", "shp_a", goods(1, 2, "40.00"), goods(2, 1, "9.50"), freight("7.25")),
        invoice("INV-2", "shp_b", goods(2, 2, "9.50"), freight("5.00")),
    ]
    # One kettle came back: credited at its invoiced price, with part of the freight.
    notes = [note("CRN-1", "INV-1", goods(1, 1, "40.00"), freight("3.62"))]
    assert violations(order(), shipments, invoices, notes) == []


def test_a_cancelled_order_that_never_shipped_agrees_and_one_returned_to_sender_too() -> None:
    cancelled = order(OrderState.CANCELLED, OrderLine(1, "KETTLE", 2, 2, D("40.00")))
    assert violations(cancelled, [], [], []) == []
    # Billed on ship, returned to sender, cancelled and credited: the freight stays billed.
    returned = [shipment("shp_a", ShipmentState.RETURNED, l1=2)]
    billed = [invoice("INV-1", "shp_a", goods(1, 2, "40.00"), freight("5.00"))]
    credited = [note("CRN-1", "INV-1", goods(1, 2, "40.00"))]
    assert violations(cancelled, returned, billed, credited) == []
    # ... unless the credit never came: the goods are still billed.
    assert violations(cancelled, returned, billed, []) == [
        "cancelled order, nothing delivered: goods invoiced 80.00, credited 0.00, net 80.00 USD"
    ]


def test_units_shipped_beyond_the_order_and_a_short_completed_order_are_violations() -> None:
    partly = order(OrderState.COMPLETED, OrderLine(1, "KETTLE", 3, 1, D("40.00")))
    shipments = [delivered("shp_a", l1=1), shipment("shp_b", ShipmentState.LIVE, l1=2)]
    invoices = [
        invoice("INV-1", "shp_a", goods(1, 1, "40.00"), freight("5")),
        invoice("INV-2", "shp_b", goods(1, 2, "40.00"), freight("5")),
    ]
    assert violations(partly, shipments, invoices, []) == [
        "line 1 (KETTLE): 3 units shipped, ordered 3 net of 1 cancelled",
        "line 1 (KETTLE): 1 units delivered, ordered 3 net of 1 cancelled (completed order)",
    ]
    # Units of a line the order does not have.
    stray = [delivered("shp_a", l1=2, l9=1)]
    billed = [invoice("INV-1", "shp_a", goods(1, 2, "40.00"))]
    assert violations(order(OrderState.COMPLETED, KETTLE), stray, billed, [])[0] == (
        "shipment shp_a carries 1 units of order line 9, which the order does not have"
    )


def test_a_delivered_shipment_needs_exactly_one_invoice_of_its_units_at_the_orders_prices() -> None:
    one = order(OrderState.COMPLETED, KETTLE)
    assert violations(one, [delivered("shp_a", l1=2)], [], []) == [
        "shipment shp_a delivered, no invoice"
    ]
    twice = [
        invoice("INV-2", "shp_a", goods(1, 2, "40.00")),
        invoice("INV-1", "shp_a", goods(1, 2, "40.00")),
    ]
    assert violations(one, [delivered("shp_a", l1=2)], twice, []) == [
        "shipment shp_a delivered, 2 invoices: INV-1, INV-2"
    ]
    cheap = [invoice("INV-1", "shp_a", goods(1, 2, "39.99"), freight("5.00"))]
    assert violations(one, [delivered("shp_a", l1=2)], cheap, []) == [
        "invoice INV-1 bills goods 79.98 (line 1 x2), shipment shp_a carries line 1 x2, 80.00 "
        "at the order's prices"
    ]
    short = [invoice("INV-1", "shp_a", goods(1, 1, "40.00"))]
    assert violations(one, [delivered("shp_a", l1=2)], short, []) == [
        "invoice INV-1 bills goods 40.00 (line 1 x1), shipment shp_a carries line 1 x2, 80.00 "
        "at the order's prices"
    ]


def test_an_invoice_must_add_up_be_in_the_orders_currency_and_bill_a_shipment_of_it() -> None:
    one = order(OrderState.COMPLETED, KETTLE)
    wrong_total = invoice("INV-1", "shp_a", goods(1, 2, "40.00"), freight("5.00"), total="90")
    assert violations(one, [delivered("shp_a", l1=2)], [wrong_total], []) == [
        "invoice INV-1 total 90.00, its lines sum 85.00"
    ]
    bad_line = DocumentLine(True, 1, 2, D("40.00"), D("81.00"))
    assert (
        violations(one, [delivered("shp_a", l1=2)], [invoice("INV-1", "shp_a", bad_line)], [])[0]
        == "invoice INV-1 line 1: 2 x 40.00 is 80.00, not 81.00"
    )
    euros = Invoice("inv_INV-1", "INV-1", "shp_a", "EUR", (goods(1, 2, "40.00"),), D("80.00"))
    assert violations(one, [delivered("shp_a", l1=2)], [euros], []) == [
        "invoice INV-1 in EUR, order in USD"
    ]
    elsewhere = [
        invoice("INV-1", "shp_a", goods(1, 2, "40.00")),
        invoice("INV-2", "shp_x", goods(1, 2, "40.00")),
    ]
    assert violations(one, [delivered("shp_a", l1=2)], elsewhere, []) == [
        "invoice INV-2 bills shipment shp_x, not an outbound shipment of the order"
    ]


def test_credit_notes_never_credit_more_than_their_invoice_billed() -> None:
    one = order(OrderState.COMPLETED, KETTLE)
    shipped = [delivered("shp_a", l1=2)]
    billed = [invoice("INV-1", "shp_a", goods(1, 2, "40.00"), freight("5.00"))]
    over = [
        note("CRN-1", "INV-1", goods(1, 2, "40.00"), freight("5.00")),
        note("CRN-2", "INV-1", goods(1, 1, "40.00")),
    ]
    assert violations(one, shipped, billed, over) == [
        "invoice INV-1 line 1: 3 units credited, 2 invoiced",
        "invoice INV-1: 125.00 credited by CRN-1, CRN-2, 85.00 invoiced",
    ]
    dearer = [note("CRN-1", "INV-1", goods(1, 1, "45.00"))]
    assert violations(one, shipped, billed, dearer) == [
        "credit note CRN-1 credits line 1 at 45.00, invoice INV-1 billed 40.00"
    ]
    stray = [note("CRN-1", "INV-9", goods(1, 1, "40.00"))]
    assert violations(one, shipped, billed, stray) == [
        "credit note CRN-1 credits invoice inv_INV-9, not an invoice of the order"
    ]


def test_the_invoice_of_a_cancelled_or_returned_shipment_is_credited_in_full() -> None:
    # Completed after a reship: the returned parcel's invoice must be credited for its goods.
    reshipped = order(OrderState.COMPLETED, KETTLE)
    shipments = [shipment("shp_a", ShipmentState.RETURNED, l1=2), delivered("shp_b", l1=2)]
    invoices = [
        invoice("INV-1", "shp_a", goods(1, 2, "40.00"), freight("5.00")),
        invoice("INV-2", "shp_b", goods(1, 2, "40.00"), freight("5.00")),
    ]
    assert violations(
        reshipped, shipments, invoices, [note("CRN-1", "INV-1", goods(1, 1, "40.00"))]
    ) == [
        "invoice INV-1 of shipment shp_a (returned to sender): goods 80.00 invoiced, 40.00 credited"
    ]
    assert (
        violations(reshipped, shipments, invoices, [note("CRN-1", "INV-1", goods(1, 2, "40.00"))])
        == []
    )


def test_amounts_show_every_decimal_they_have() -> None:
    assert (money(D("5")), money(D("0.125")), money(D("-3.1"))) == ("5.00", "0.125", "-3.10")
