# The saga mutates orders between asserts; mypy would narrow `status` as if it could not.
# mypy: disable-error-code="comparison-overlap"
"""Parcels the carrier returns to sender, and the operator's two ways on (reship, or cancel and
credit), through the saga against the real inventory domain (tests/order/mesh.py).

What each test pins down: a returned parcel is recorded once and shows as an EXCEPTION naming it;
its units count as neither shipped nor delivered and are not re-planned until an operator
decides; reship re-plans them like a short pick and the order completes with one invoice;
cancel-and-credit cancels them and, for a parcel billed on ship, asks billing for the credit, so
Σ invoiced - Σ credited is the value delivered; and every arrival order ends the same way.
"""

from __future__ import annotations

import copy
import itertools
from decimal import Decimal

import pytest

from services.kit.errors import Conflict
from services.order.domain import (
    ExceptionClearance,
    FulfillmentStep,
    InvoicePosted,
    LineQuantity,
    OrderCancelled,
    OrderCompleted,
    OrderExceptionCleared,
    OrderStatus,
    RequestAvailability,
    ReturnedShipmentCreditRequested,
    ReturnedShipmentResolution,
    ReturnedShipmentResolved,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentManifested,
    ShipmentReturnedToSender,
    TimelineEntryKind,
    figures,
)
from services.order.domain.errors import (
    InconsistentInput,
    NotFound,
    ReturnedShipmentAlreadyResolved,
    ReturnedShipmentAwaitsDecision,
    ShipmentNotReturnedToSender,
)
from tests.order.mesh import Mesh
from tests.order.support import EAST, WEST, order_input

RESHIP = ReturnedShipmentResolution.RESHIP
CANCEL_AND_CREDIT = ReturnedShipmentResolution.CANCEL_AND_CREDIT


def shipped(
    lines: tuple[tuple[str, int], ...] = (("WIDGET", 2),), *, on_ship: bool = False
) -> Mesh:
    """ord_1 picked and manifested: one shipment per warehouse (WIDGET at EAST, GADGET at WEST)."""
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.receive("GADGET", WEST, 10)
    if on_ship:
        mesh.on_ship_orders.add("ord_1")
    mesh.place("ord_1", order_input(*lines))
    mesh.drain()
    for task in mesh.open_picks():
        mesh.confirm_pick(task)
    mesh.drain()
    for pick in mesh.shippable():
        mesh.ship(pick)
    mesh.drain()
    assert mesh.orders["ord_1"].status is OrderStatus.SHIPPED
    return mesh


def shipment_of(mesh: Mesh, sku: str) -> str:
    (found,) = [sid for sid, s in mesh.shipments.items() if sku in s.skus]
    return found


def published(mesh: Mesh) -> list[object]:
    return [*mesh.published, *mesh.order_events]


def test_a_returned_parcel_is_an_exception_naming_it_and_nothing_re_plans_on_its_own() -> None:
    mesh = shipped()
    shipment_id = shipment_of(mesh, "WIDGET")
    order = mesh.orders["ord_1"]

    mesh.return_to_sender(shipment_id)
    mesh.drain()

    assert order.status is OrderStatus.EXCEPTION
    assert order.step is FulfillmentStep.AWAIT_DELIVERY
    assert order.exception is not None and order.exception.shipment_id == shipment_id
    assert order.exception_reason == (
        f"shipment {shipment_id} returned to sender (2 units back at {EAST}): "
        "reship it or cancel and credit it"
    )
    line = order.lines[0]
    # Back at the warehouse: neither shipped nor delivered, still the order's picked units.
    assert (line.quantity_picked, line.quantity_shipped, line.quantity_delivered) == (2, 0, 0)
    assert order.shipments[shipment_id].returned and order.shipments[shipment_id].resolution is None
    # Not open demand: no availability check, no reservation, nothing to pick.
    assert mesh.quiet and order.availability_request is None and not mesh.open_picks()
    assert figures(order)[1].open_demand == 0 and order.lines[0].quantity_allocated == 0
    assert order.deadline_key == "" and order.step_deadline is None  # waits for a person
    details = [e.detail for e in order.timeline]
    assert any(
        f"shipment {shipment_id} returned to sender (recipient absent); 2 units back" in d
        for d in details
    )
    # Inventory has the units back, in quarantine.
    assert mesh.repo.get_position("WIDGET", EAST).non_sellable == 2

    before = copy.deepcopy(order)
    again = mesh.apply("ord_1", ShipmentReturnedToSender(shipment_id, EAST, (LineQuantity(1, 2),)))
    assert not again.changed and again.events == () and again.commands == ()
    assert order == before


def test_a_retry_is_refused_with_the_two_ways_on() -> None:
    mesh = shipped()
    shipment_id = shipment_of(mesh, "WIDGET")
    mesh.return_to_sender(shipment_id)
    mesh.drain()
    order = mesh.orders["ord_1"]
    before = copy.deepcopy(order)

    with pytest.raises(ReturnedShipmentAwaitsDecision) as refused:
        mesh.retry("ord_1")

    assert refused.value.reason == "RETURNED_SHIPMENT_AWAITS_DECISION"
    assert shipment_id in refused.value.message
    assert "ReshipReturnedShipment or CancelAndCreditReturnedShipment" in refused.value.message
    assert order == before


def test_reship_re_plans_like_a_short_pick_and_completes_with_one_invoice() -> None:
    mesh = shipped()
    returned = shipment_of(mesh, "WIDGET")
    mesh.return_to_sender(returned)
    mesh.drain()
    order = mesh.orders["ord_1"]

    result = mesh.resolve("ord_1", returned, RESHIP, "customer confirmed the address")

    (resolved,) = [e for e in result.events if isinstance(e, ReturnedShipmentResolved)]
    assert (resolved.shipment_id, resolved.resolution) == (returned, RESHIP)
    assert [(x.line_number, x.sku, x.quantity) for x in resolved.lines] == [(1, "WIDGET", 2)]
    assert resolved.reason == "customer confirmed the address"
    assert any(isinstance(c, RequestAvailability) for c in result.commands)
    assert order.status is OrderStatus.PLACED and order.exception is None
    assert order.lines[0].quantity_picked == 0  # the returned units are open demand again

    mesh.fulfil_everything()

    assert order.status is OrderStatus.COMPLETED
    line = order.lines[0]
    assert (line.quantity_shipped, line.quantity_delivered, line.quantity_invoiced) == (2, 2, 2)
    assert line.quantity_cancelled == 0
    (invoice,) = order.invoices.values()
    assert invoice.shipment_id != returned
    (completed,) = [e for e in published(mesh) if isinstance(e, OrderCompleted)]
    assert completed.invoice_ids == (invoice.invoice_id,)
    assert mesh.ledger("ord_1") == (Decimal("5.00"), Decimal(0))
    # The stock: the two reshipped units left, the two returned ones wait in quarantine.
    position = mesh.repo.get_position("WIDGET", EAST)
    assert (position.on_hand, position.non_sellable, position.reserved) == (6, 2, 0)
    assert any(
        "(returned to sender) reshipped: 2 units planned again" in e.detail for e in order.timeline
    )

    again = mesh.resolve("ord_1", returned, RESHIP)
    assert not again.changed and again.events == () and again.commands == ()
    with pytest.raises(ReturnedShipmentAlreadyResolved, match="already reshipped"):
        mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT)


def test_cancel_and_credit_of_the_whole_order_ends_cancelled_and_nets_to_zero() -> None:
    mesh = shipped()
    returned = shipment_of(mesh, "WIDGET")
    mesh.return_to_sender(returned)
    mesh.drain()
    order = mesh.orders["ord_1"]

    result = mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT, "customer moved away")

    assert order.status is OrderStatus.CANCELLED
    assert order.lines[0].quantity_cancelled == 2 and order.lines[0].quantity_picked == 0
    assert order.cancel_reason == "customer moved away"
    kinds = [type(e) for e in result.events]
    # Nothing was invoiced; the parcel's exception ends with the order.
    assert kinds == [ReturnedShipmentResolved, OrderCancelled, OrderExceptionCleared]
    assert result.events[-1].clearance is ExceptionClearance.CANCELLED  # type: ignore[union-attr]
    assert result.commands == ()
    moves = [e for e in order.timeline if e.kind is TimelineEntryKind.STATUS_CHANGE]
    assert moves[-1].transition == "cancel"
    mesh.drain()
    assert mesh.ledger("ord_1") == (Decimal(0), Decimal(0))

    again = mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT)
    assert not again.changed
    with pytest.raises(ReturnedShipmentAlreadyResolved, match="already cancelled and credited"):
        mesh.resolve("ord_1", returned, RESHIP)


def test_cancel_and_credit_of_one_parcel_completes_the_rest() -> None:
    mesh = shipped((("WIDGET", 2), ("GADGET", 1)))
    returned, kept = shipment_of(mesh, "WIDGET"), shipment_of(mesh, "GADGET")
    mesh.return_to_sender(returned)
    mesh.deliver_shipment(kept)
    mesh.invoice(kept)
    mesh.drain()
    order = mesh.orders["ord_1"]
    assert order.status is OrderStatus.EXCEPTION

    mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT)

    assert order.status is OrderStatus.COMPLETED
    widget, gadget = order.lines
    assert (widget.quantity_cancelled, widget.quantity_invoiced) == (2, 0)
    assert (gadget.quantity_delivered, gadget.quantity_invoiced) == (1, 1)
    moves = [e for e in order.timeline if e.kind is TimelineEntryKind.STATUS_CHANGE]
    assert moves[-1].transition == "complete"
    assert (
        mesh.ledger("ord_1")
        == (Decimal("2.50"), Decimal(0))
        == (
            mesh.delivered_value("ord_1"),
            Decimal(0),
        )
    )


def test_a_parcel_billed_on_ship_is_credited_whichever_way_the_operator_decides() -> None:
    for resolution in (CANCEL_AND_CREDIT, RESHIP):
        mesh = shipped(on_ship=True)
        returned = shipment_of(mesh, "WIDGET")
        mesh.pick_up(returned)
        mesh.invoice(returned)  # billed when the carrier took it
        mesh.drain()
        mesh.return_to_sender(returned)
        mesh.drain()
        order = mesh.orders["ord_1"]
        assert order.lines[0].quantity_invoiced == 0  # a returned parcel's invoice never counts

        result = mesh.resolve("ord_1", returned, resolution)

        (credit,) = [e for e in result.events if isinstance(e, ReturnedShipmentCreditRequested)]
        assert (credit.shipment_id, credit.invoice_id) == (returned, f"inv_{returned}")
        assert [(x.line_number, x.sku, x.quantity) for x in credit.lines] == [(1, "WIDGET", 2)]
        mesh.fulfil_everything()
        mesh.drain()
        assert order.is_terminal
        invoiced, credited = mesh.ledger("ord_1")
        assert credited == Decimal("5.00")
        assert invoiced - credited == mesh.delivered_value("ord_1")
        assert sum(isinstance(e, ReturnedShipmentCreditRequested) for e in published(mesh)) == 1
        notes = [e.detail for e in order.timeline if e.detail.startswith("credit note")]
        assert notes == [
            f"credit note crn_inv_{returned} credits invoice inv_{returned} of shipment "
            f"{returned} (returned to sender)"
        ]
        if resolution is RESHIP:
            assert order.status is OrderStatus.COMPLETED
            (completed,) = [e for e in published(mesh) if isinstance(e, OrderCompleted)]
            assert f"inv_{returned}" not in completed.invoice_ids and completed.invoice_ids
        else:
            assert order.status is OrderStatus.CANCELLED


def test_an_invoice_arriving_after_the_decision_and_the_end_is_credited_then() -> None:
    mesh = shipped(on_ship=True)
    returned = shipment_of(mesh, "WIDGET")
    mesh.return_to_sender(returned)
    mesh.drain()
    mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT)
    mesh.drain()
    order = mesh.orders["ord_1"]
    assert order.status is OrderStatus.CANCELLED and mesh.ledger("ord_1") == (0, 0)

    # Billing posted at the manifest; its event reaches the order only now.
    mesh.invoice(returned)
    result = mesh.deliver()

    assert [type(e) for e in result.events] == [ReturnedShipmentCreditRequested]
    assert order.status is OrderStatus.CANCELLED
    mesh.drain()
    assert mesh.ledger("ord_1") == (Decimal("5.00"), Decimal("5.00"))
    again = mesh.apply("ord_1", InvoicePosted(f"inv_{returned}", returned, (LineQuantity(1, 2),)))
    assert not again.changed


def test_a_return_the_order_heard_of_before_the_manifest_is_the_same_return() -> None:
    mesh = shipped()
    returned = shipment_of(mesh, "WIDGET")
    order = mesh.orders["ord_1"]
    lines = (LineQuantity(1, 2),)
    del order.shipments[returned]  # as if its manifest had not arrived yet
    mesh.apply("ord_1", ShipmentReturnedToSender(returned, EAST, lines, "refused"))
    assert order.status is OrderStatus.EXCEPTION

    for late in (
        ShipmentManifested(returned, EAST, lines),
        ShipmentFailed(returned, "address not found"),
    ):
        assert not mesh.apply("ord_1", late).changed
    with pytest.raises(InconsistentInput, match="was returned to sender"):
        mesh.apply("ord_1", ShipmentDelivered(returned, EAST, lines))
    assert order.shipments[returned].returned and order.lines[0].quantity_shipped == 0


def test_a_delivery_exception_of_the_parcel_gives_way_to_the_decision_it_needs() -> None:
    mesh = shipped()
    returned = shipment_of(mesh, "WIDGET")
    order = mesh.orders["ord_1"]
    mesh.apply("ord_1", ShipmentFailed(returned, "address not found"))
    assert order.exception_reason.endswith("address not found")

    mesh.return_to_sender(returned)
    mesh.drain()

    assert (
        order.exception is not None
        and "reship it or cancel and credit it" in order.exception_reason
    )
    assert order.exception.shipment_id == returned


def test_decisions_on_parcels_that_did_not_come_back_are_refused_precisely() -> None:
    mesh = shipped((("WIDGET", 2), ("GADGET", 1)))
    on_its_way, delivered = shipment_of(mesh, "WIDGET"), shipment_of(mesh, "GADGET")
    mesh.deliver_shipment(delivered)
    mesh.drain()
    order = mesh.orders["ord_1"]
    before = copy.deepcopy(order)

    for shipment_id, state in ((on_its_way, "on its way"), (delivered, "delivered")):
        with pytest.raises(ShipmentNotReturnedToSender) as refused:
            mesh.resolve("ord_1", shipment_id, RESHIP)
        assert refused.value.reason == "SHIPMENT_NOT_RETURNED_TO_SENDER"
        assert refused.value.message == (
            f"shipment {shipment_id} of order ord_1 was not returned to sender (it is {state}); "
            "only a returned shipment can be reshipped or cancelled and credited"
        )
    with pytest.raises(NotFound, match="has no shipment"):
        mesh.resolve("ord_1", "shp_of_another_order", CANCEL_AND_CREDIT)
    assert order == before


def test_a_decision_waits_for_the_returned_units_pick() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    (task,) = mesh.open_picks()
    mesh.confirm_pick(task)  # the pick event waits in the order's inbox
    (pick,) = mesh.picked
    returned = mesh.ship(pick)
    mesh.return_to_sender(returned)
    order = mesh.orders["ord_1"]
    for index in reversed(range(len(mesh.inbox))):
        if not type(mesh.inbox[index][1]).__name__.startswith("Pick"):
            mesh.deliver(index)
    assert order.shipments[returned].returned and not order.picks
    before = copy.deepcopy(order)

    with pytest.raises(Conflict, match="try again shortly"):
        mesh.resolve("ord_1", returned, RESHIP)
    assert order == before

    mesh.drain()
    mesh.resolve("ord_1", returned, RESHIP)
    mesh.fulfil_everything()
    assert order.status is OrderStatus.COMPLETED and order.lines[0].quantity_delivered == 2


ARRIVALS = ("returned", "delivered", "invoiced")


@pytest.mark.parametrize("sequence", list(itertools.permutations(ARRIVALS)), ids="-then-".join)
def test_every_arrival_order_of_a_return_and_the_other_parcel_ends_the_same(
    sequence: tuple[str, ...],
) -> None:
    """One parcel (billed on ship) comes back while the other is delivered and invoiced; the
    three facts reach the order in any order, each twice. After cancel-and-credit every order
    ends COMPLETED with the same lines, invoices, events and money."""

    def run(order_of_arrival: tuple[str, ...]) -> tuple[object, ...]:
        mesh = shipped((("WIDGET", 2), ("GADGET", 1)), on_ship=True)
        returned, kept = shipment_of(mesh, "WIDGET"), shipment_of(mesh, "GADGET")
        mesh.invoice(returned)  # billed when it left
        mesh.drain()
        mesh.return_to_sender(returned)
        mesh.deliver_shipment(kept)
        mesh.invoice(kept)
        arrivals = dict(zip(ARRIVALS, mesh.inbox, strict=True))
        mesh.inbox.clear()
        for name in order_of_arrival:
            order_id, fact = arrivals[name]
            mesh.apply(order_id, fact)
            assert not mesh.apply(order_id, fact).changed
        mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT)
        mesh.drain()
        order = mesh.orders["ord_1"]
        kinds = sorted(type(e).__name__ for e in published(mesh))
        return (order.status, order.lines, sorted(order.invoices), mesh.ledger("ord_1"), kinds)

    reference = run(ARRIVALS)
    assert run(sequence) == reference
    assert reference[0] is OrderStatus.COMPLETED
    assert reference[3] == (Decimal("7.50"), Decimal("5.00"))  # 2.50 delivered, kept


def test_the_timeline_tells_the_story() -> None:
    mesh = shipped(on_ship=True)
    returned = shipment_of(mesh, "WIDGET")
    mesh.invoice(returned)
    mesh.return_to_sender(returned)
    mesh.drain()
    mesh.resolve("ord_1", returned, CANCEL_AND_CREDIT, "undeliverable")
    mesh.drain()
    details = [e.detail for e in mesh.orders["ord_1"].timeline]
    story = [
        f"shipment {returned} returned to sender (recipient absent); 2 units back at {EAST}",
        f"shipment {returned} returned to sender (2 units back at {EAST}): reship it or cancel "
        "and credit it",
        f"shipment {returned} (returned to sender) cancelled and credited: 2 units cancelled: "
        "undeliverable",
        f"credit of invoice inv_{returned} asked of billing: shipment {returned} was returned "
        "to sender",
        "cancelled: undeliverable",
        f"credit note crn_inv_{returned} credits invoice inv_{returned} of shipment {returned} "
        "(returned to sender)",
    ]
    at = [details.index(line) for line in story]
    assert at == sorted(at), details
