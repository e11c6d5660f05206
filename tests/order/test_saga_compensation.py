# The saga mutates orders between asserts; mypy would narrow `status` as if it could not.
# mypy: disable-error-code="comparison-overlap"
"""Saga scenarios that go wrong: cancellations and their compensations, timeouts, retries,
failed and stray reservations. They run against the real inventory domain through the mesh."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from services.inventory import domain as inv
from services.order.domain import (
    CancelPickTask,
    FulfillmentStep,
    OrderCancelled,
    OrderExceptionCleared,
    OrderReleased,
    OrderStatus,
    ReleaseReservation,
    RequestAvailability,
    RestockPicked,
    StepTimeouts,
    TimelineEntryKind,
    cancellation,
)
from services.order.domain.errors import OrderNotCancellable, OrderNotRetryable
from tests.order.mesh import Mesh
from tests.order.support import EAST, WEST, order_input


def _reserved(mesh: Mesh, sku: str, location: str) -> int:
    return mesh.repo.get_position(sku, location).reserved


def test_cancel_before_pick_releases_the_stock_and_withdraws_the_pick() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    (rid,) = order.reservations

    result = mesh.cancel("ord_1", "customer changed mind")

    assert result.commands == (
        ReleaseReservation("ord_1", rid, "customer changed mind"),
        CancelPickTask("ord_1", rid),
    )
    cancelled = result.events[0]
    assert isinstance(cancelled, OrderCancelled) and cancelled.released_reservation_ids == (rid,)
    assert order.status is OrderStatus.CANCELLED and order.cancel_reason == "customer changed mind"
    assert order.lines[0].quantity_cancelled == 3 and order.lines[0].quantity_allocated == 0
    mesh.drain()
    assert _reserved(mesh, "WIDGET", EAST) == 0
    assert mesh.open_picks() == []
    assert inv.invariant_violations(mesh.repo) == []

    again = mesh.cancel("ord_1")
    assert not again.changed and again.commands == () and again.events == ()


def test_cancel_after_pickup_is_rejected_and_changes_nothing() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    shipment_id = mesh.ship(mesh.shippable()[0])
    mesh.drain()
    mesh.pick_up(shipment_id)
    before = copy.deepcopy(order)

    with pytest.raises(OrderNotCancellable) as caught:
        mesh.cancel("ord_1")
    assert caught.value.violations[0].type == "SHIPMENT"
    assert order == before
    assert not mesh.shipments[shipment_id].cancelled
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 2


def test_cancel_after_delivery_is_rejected_before_asking_shipment() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    mesh.deliver_shipment(mesh.ship(mesh.shippable()[0]))
    mesh.drain()

    with pytest.raises(OrderNotCancellable) as caught:
        mesh.cancel("ord_1")
    assert caught.value.violations[0].type == "ORDER_STATUS"
    assert "create a return" in caught.value.message
    assert mesh.cancelled_orders == set()
    assert order.status is OrderStatus.DELIVERED


def test_cancel_after_the_label_cancels_the_shipment_and_puts_the_units_back() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    shipment_id = mesh.ship(mesh.shippable()[0])
    mesh.drain()
    assert order.status is OrderStatus.SHIPPED

    mesh.cancel("ord_1")
    mesh.drain()
    assert order.status is OrderStatus.CANCELLED
    assert mesh.shipments[shipment_id].cancelled
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 5
    # The cancelled shipment's units count as neither shipped nor delivered.
    assert order.lines[0].quantity_shipped == 0 and order.lines[0].quantity_cancelled == 3
    assert any("cancelled; 3 units back to stock" in e.detail for e in order.timeline)
    assert inv.invariant_violations(mesh.repo) == []


def test_cancel_after_pick_puts_the_picked_units_back_through_the_shipment() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 2

    result = mesh.cancel("ord_1")
    # The order itself restocks nothing: the cancelled shipment does, once.
    assert not any(isinstance(c, RestockPicked) for c in result.commands)
    mesh.drain()
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 5
    assert [s.cancelled for s in mesh.shipments.values()] == [True]
    mesh.cancel("ord_1")  # a second cancel restocks nothing more
    mesh.drain()
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 5


def test_a_pick_confirmed_while_the_cancel_was_in_flight_is_restocked() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    task = mesh.open_picks()[0]
    mesh.cancel("ord_1")
    mesh.confirm_pick(task)  # the warehouse had not heard yet
    mesh.drain()  # the release now fails (already picked); the late pick restocks
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 5
    assert mesh.repo.get_position("WIDGET", EAST).reserved == 0
    assert mesh.orders["ord_1"].status is OrderStatus.CANCELLED


def test_pick_timeout_goes_to_exception_and_retry_goes_back() -> None:
    mesh = Mesh(timeouts=StepTimeouts(pick=timedelta(minutes=30)))
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 1)))
    mesh.drain()
    assert order.step_deadline == mesh.clock.now + timedelta(minutes=30)

    mesh.clock.advance(minutes=29)
    assert not mesh.tick("ord_1").changed
    mesh.clock.advance(minutes=1)
    assert mesh.tick("ord_1").changed
    assert order.status is OrderStatus.EXCEPTION and order.step is FulfillmentStep.AWAIT_PICK
    assert order.exception_reason.startswith("AWAIT_PICK not done by")
    # The timeout, the move to EXCEPTION, and its OrderExceptionRaised published.
    assert [e.kind for e in order.timeline[-3:]] == [
        TimelineEntryKind.EXCEPTION,
        TimelineEntryKind.STATUS_CHANGE,
        TimelineEntryKind.EVENT,
    ]
    assert not mesh.tick("ord_1").changed  # one timeout, one exception

    mesh.clock.advance(minutes=5)
    result = mesh.retry("ord_1")
    assert order.status is OrderStatus.RELEASED and order.exception is None
    # The warehouse is nudged again, and the exception is over.
    assert [type(e) for e in result.events] == [OrderReleased, OrderExceptionCleared]
    assert order.step_deadline == mesh.clock.now + timedelta(minutes=30)
    mesh.drain()
    assert len(mesh.open_picks()) == 1  # pick-task creation stayed idempotent
    with pytest.raises(OrderNotRetryable):
        mesh.retry("ord_1")


def test_progress_after_a_timeout_clears_the_exception() -> None:
    mesh = Mesh(timeouts=StepTimeouts(pick=timedelta(minutes=30)))
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 1)))
    mesh.drain()
    mesh.clock.advance(hours=1)
    mesh.tick("ord_1")
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    assert order.status is OrderStatus.PICKED and order.exception is None


def test_a_failed_reservation_is_an_exception_that_retry_replans() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.repo.save_location(inv.Location(EAST, "East", active=False))  # closed meanwhile
    mesh.drain()
    assert order.status is OrderStatus.EXCEPTION and order.step is FulfillmentStep.RESERVE
    assert "WH-EAST" in order.exception_reason
    assert order.lines[0].quantity_backordered == 2

    mesh.receive("WIDGET", WEST, 5)
    mesh.drain()  # the receipt alone re-plans and recovers
    assert order.status is OrderStatus.RELEASED and order.exception is None


def test_retry_after_a_failed_reservation_asks_for_availability_again() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.repo.save_location(inv.Location(EAST, "East", active=False))
    mesh.drain()
    mesh.repo.save_location(inv.Location(EAST, "East", active=True))
    result = mesh.retry("ord_1")
    assert [type(c) for c in result.commands] == [RequestAvailability]
    mesh.drain()
    assert order.status is OrderStatus.RELEASED


def test_a_reservation_nobody_asked_for_is_given_back() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    mesh.cancel("ord_1")
    mesh.drain()
    # A reservation made late for the cancelled order (e.g. a runner retry after a crash).
    stray = inv.reserve(
        mesh.repo,
        mesh.ids,
        inv.ReserveStock(
            "ord_1",
            EAST,
            (inv.ReserveLine(1, "WIDGET", 2),),
            inv.ReservationPolicy.PARTIAL,
            "late-key-1",
        ),
        mesh.clock.now,
    )
    mesh.consume_inventory_events(stray.events)
    mesh.drain()
    assert _reserved(mesh, "WIDGET", EAST) == 0
    assert inv.invariant_violations(mesh.repo) == []


def test_a_reservation_answer_arriving_after_cancel_is_released() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    reserve_command = mesh.commands[0]
    mesh.cancel("ord_1")
    mesh.commands.clear()  # the cancel emitted nothing to release yet: nothing was held
    mesh.execute(reserve_command)  # the runner's call lands after the cancel
    answer = mesh.inbox.pop(0)  # the gRPC answer (the inventory.reserved event stays queued)
    result = mesh.apply(*answer)
    assert [type(c) for c in result.commands] == [ReleaseReservation]
    assert mesh.orders["ord_1"].timeline[-1].kind is TimelineEntryKind.EXCEPTION
    mesh.drain()
    assert _reserved(mesh, "WIDGET", EAST) == 0


def test_a_partial_cancel_of_unpicked_units_keeps_the_rest_and_cancelling_all_cancels() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.receive("GADGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 3), ("GADGET", 2)))
    mesh.drain()
    plan = cancellation.plan_partial_cancel(order, (cancellation.LineCancel(1, 2),))
    assert [(r.lines[0].line_number, r.lines[0].quantity) for r in plan.releases] == [(1, 2)]

    with pytest.raises(OrderNotCancellable, match="3 units not yet picked; 4 asked"):
        cancellation.plan_partial_cancel(order, (cancellation.LineCancel(1, 4),))
    result = mesh.saga.cancel_lines(order, plan, "budget", mesh.context())
    assert [type(e).__name__ for e in result.events] == ["OrderLinesCancelled"]
    assert order.lines[0].quantity_cancelled == 2 and order.lines[0].quantity_allocated == 1
    assert order.status is not OrderStatus.CANCELLED

    rest = cancellation.plan_partial_cancel(
        order, (cancellation.LineCancel(1, 1), cancellation.LineCancel(2, 2))
    )
    result = mesh.saga.cancel_lines(order, rest, "all of it", mesh.context())
    assert order.status is OrderStatus.CANCELLED
    assert [type(e).__name__ for e in result.events] == ["OrderLinesCancelled", "OrderCancelled"]


def test_an_invoice_billed_on_ship_is_credited_when_its_shipment_is_cancelled() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    mesh.drain()
    shipment_id = mesh.ship(mesh.shippable()[0])
    mesh.drain()
    mesh.invoice(shipment_id)  # a partner billed on ship: invoiced at the label
    mesh.drain()

    mesh.cancel("ord_1")
    mesh.drain()
    asked = [e for e in mesh.published if type(e).__name__ == "ReturnedShipmentCreditRequested"]
    assert [(e.shipment_id, e.invoice_id) for e in asked] == [(shipment_id, f"inv_{shipment_id}")]
    assert order.status is OrderStatus.CANCELLED
    assert order.lines[0].quantity_invoiced == 0  # a cancelled shipment's invoice never counts
    mesh.cancel("ord_1")
    mesh.drain()  # asked once
    assert (
        len([e for e in mesh.published if type(e).__name__ == "ReturnedShipmentCreditRequested"])
        == 1
    )
