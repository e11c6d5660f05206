"""The saga reaches the same order whatever order the shipment and billing streams' inputs come in.

Shipment milestones and invoices travel on different streams, so an invoice can reach order before
the delivery it bills (always so for partners billed on ship). The order must not complete until
every unit is both delivered and invoiced, and every permutation must end in the same order.
"""

from __future__ import annotations

import itertools

import pytest

from services.order.domain import (
    InvoicePosted,
    LineQuantity,
    OrderStatus,
    ShipmentDelivered,
    ShipmentManifested,
)
from tests.order.mesh import Mesh
from tests.order.support import EAST, order_input

SHIPMENT = "shp_one"
LINES = (LineQuantity(1, 2),)
INPUTS = {
    "manifested": ShipmentManifested(SHIPMENT, EAST, LINES),
    "delivered": ShipmentDelivered(SHIPMENT, EAST, LINES),
    "invoiced": InvoicePosted("inv_one", SHIPMENT, LINES),
}


def picked_order() -> Mesh:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    for task in mesh.open_picks():
        mesh.confirm_pick(task)
    mesh.drain()
    assert mesh.orders["ord_1"].status is OrderStatus.PICKED
    return mesh


def final_state(mesh: Mesh) -> tuple[object, ...]:
    order = mesh.orders["ord_1"]
    line = order.lines[0]
    published = [type(e).__name__ for e in mesh.order_events]
    return (
        order.status,
        order.step,
        (line.quantity_shipped, line.quantity_delivered, line.quantity_invoiced),
        published,
    )


@pytest.mark.parametrize("sequence", list(itertools.permutations(INPUTS)), ids="-then-".join)
def test_every_order_of_milestones_and_invoice_ends_in_the_same_order(
    sequence: tuple[str, ...],
) -> None:
    reference = picked_order()
    for name in ("manifested", "delivered", "invoiced"):
        reference.apply("ord_1", INPUTS[name])
    mesh = picked_order()

    for name in sequence:
        mesh.apply("ord_1", INPUTS[name])
        mesh.apply("ord_1", INPUTS[name])  # and each one twice: a redelivery changes nothing

    assert final_state(mesh) == final_state(reference)
    assert final_state(mesh)[0] is OrderStatus.COMPLETED
    assert final_state(mesh)[2] == (2, 2, 2)


@pytest.mark.parametrize("first", [("invoiced",), ("manifested", "invoiced")])
def test_an_invoice_before_the_delivery_does_not_complete_the_order(first: tuple[str, ...]) -> None:
    mesh = picked_order()
    for name in first:
        mesh.apply("ord_1", INPUTS[name])

    order = mesh.orders["ord_1"]
    assert order.status is OrderStatus.SHIPPED
    assert (order.lines[0].quantity_delivered, order.lines[0].quantity_invoiced) == (0, 2)
    assert "OrderCompleted" not in [type(e).__name__ for e in mesh.order_events]

    mesh.apply("ord_1", INPUTS["delivered"])
    assert order.status is OrderStatus.COMPLETED
    assert order.lines[0].quantity_delivered == 2
