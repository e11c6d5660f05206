# The saga mutates orders between asserts; mypy would narrow `status` as if it could not.
# mypy: disable-error-code="comparison-overlap"
"""Saga scenarios that move orders forward: allocation, split, backorders, short picks, timeline.

They run against the real inventory domain through the test mesh."""

from __future__ import annotations

from services.inventory import domain as inv
from services.order.domain import (
    BackorderPolicy,
    FulfillmentStep,
    HoldStatus,
    OrderAllocated,
    OrderBackordered,
    OrderCompleted,
    OrderPlaced,
    OrderReleased,
    OrderStatus,
    RequestAvailability,
    ReserveStock,
    TimelineEntryKind,
)
from tests.order.mesh import Mesh
from tests.order.support import EAST, NORTH, WEST, order_input

SHIP_COMPLETE = BackorderPolicy.SHIP_COMPLETE


def _events(mesh: Mesh) -> list[str]:
    return [type(e).__name__ for e in mesh.order_events]


def _statuses(mesh: Mesh, order_id: str) -> list[str]:
    return [
        e.to_status.name
        for e in mesh.orders[order_id].timeline
        if e.kind is TimelineEntryKind.STATUS_CHANGE and e.to_status is not None
    ]


def _reserved(mesh: Mesh, sku: str, location: str) -> int:
    return mesh.repo.get_position(sku, location).reserved


def test_full_allocation_from_one_warehouse_runs_to_completion() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.receive("GADGET", EAST, 10)
    mesh.receive("WIDGET", WEST, 50)  # WEST lacks gadgets: EAST is the one complete warehouse

    order = mesh.place("ord_1", order_input(("WIDGET", 3), ("GADGET", 2)))

    assert [type(c) for c in mesh.commands] == [ReserveStock]
    assert mesh.commands[0].location_id == EAST  # type: ignore[union-attr]
    mesh.drain()
    assert order.status is OrderStatus.RELEASED and order.step is FulfillmentStep.AWAIT_PICK
    assert [(ln.quantity_allocated, ln.quantity_backordered) for ln in order.lines] == [
        (3, 0),
        (2, 0),
    ]
    assert _reserved(mesh, "WIDGET", EAST) == 3

    mesh.fulfil_everything()

    assert order.status is OrderStatus.COMPLETED and order.step is FulfillmentStep.COMPLETE
    assert _statuses(mesh, "ord_1") == [
        "PLACED",
        "ALLOCATED",
        "RELEASED",
        "PICKED",
        "SHIPPED",
        "DELIVERED",
        "COMPLETED",
    ]
    assert [
        (ln.quantity_picked, ln.quantity_shipped, ln.quantity_invoiced) for ln in order.lines
    ] == [
        (3, 3, 3),
        (2, 2, 2),
    ]
    assert [type(e).__name__ for e in mesh.published] == [
        "OrderPlaced",
        "OrderAllocated",
        "OrderReleased",
        "OrderCompleted",
    ]
    completed = mesh.published[-1]
    assert isinstance(completed, OrderCompleted)
    assert (
        completed.invoice_ids == tuple(sorted(order.invoices)) and len(completed.invoice_ids) == 1
    )
    assert order.step_deadline is None
    assert all(e.correlation_id for e in order.timeline)


def test_events_of_a_lifecycle_in_order() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 1)))
    assert _events(mesh) == ["OrderPlaced"]
    mesh.run_command()
    mesh.deliver()  # the reservation answer settles the round
    assert _events(mesh) == ["OrderPlaced", "OrderAllocated", "OrderReleased"]
    released = mesh.order_events[2]
    assert isinstance(released, OrderReleased) and len(released.reservation_ids) == 1


def test_split_across_warehouses_when_none_can_fill_alone() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 4)
    mesh.receive("WIDGET", WEST, 3)
    mesh.receive("GADGET", WEST, 2)

    order = mesh.place("ord_1", order_input(("WIDGET", 6), ("GADGET", 2)))
    mesh.drain()

    (allocated,) = [e for e in mesh.published if isinstance(e, OrderAllocated)]
    assert set(allocated.reservation_ids) == set(order.reservations)
    by_location = {
        r.location_id: [(h.line_number, h.quantity) for h in r.lines]
        for r in order.reservations.values()
    }
    # WEST covers 5 units (3 widgets + 2 gadgets), EAST the remaining 3 widgets.
    assert by_location == {WEST: [(1, 3), (2, 2)], EAST: [(1, 3)]}
    assert order.status is OrderStatus.RELEASED
    assert len(mesh.open_picks("ord_1")) == 2
    mesh.fulfil_everything()
    assert order.status is OrderStatus.COMPLETED


def test_ship_available_releases_what_is_there_and_backorders_the_rest_until_a_receipt() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    order = mesh.place("ord_1", order_input(("WIDGET", 5)))
    mesh.run_command()
    mesh.deliver()

    assert _events(mesh) == ["OrderPlaced", "OrderAllocated", "OrderReleased", "OrderBackordered"]
    backordered = mesh.order_events[3]
    assert (
        isinstance(backordered, OrderBackordered) and backordered.lines[0].quantity_backordered == 3
    )
    assert order.status is OrderStatus.BACKORDERED
    assert order.lines[0].quantity_allocated == 2 and order.lines[0].quantity_backordered == 3
    mesh.drain()
    assert len(mesh.open_picks("ord_1")) == 1  # the available part goes to the warehouse now

    mesh.receive("WIDGET", WEST, 10)  # inventory.received -> StockAvailable -> re-plan
    mesh.drain()
    assert order.lines[0].quantity_backordered == 0 and order.lines[0].quantity_allocated == 5
    assert order.status is OrderStatus.RELEASED
    mesh.fulfil_everything()
    assert order.status is OrderStatus.COMPLETED


def test_ship_complete_holds_its_reservations_until_everything_is_reserved() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    order = mesh.place("ord_1", order_input(("WIDGET", 5), policy=SHIP_COMPLETE))
    mesh.drain()

    assert order.status is OrderStatus.BACKORDERED
    assert _reserved(mesh, "WIDGET", EAST) == 2  # held for this order
    assert "OrderReleased" not in _events(mesh) and "OrderAllocated" not in _events(mesh)
    assert mesh.open_picks() == []

    mesh.receive("WIDGET", EAST, 3)
    mesh.drain()

    assert order.status is OrderStatus.RELEASED
    allocated = [r for r in order.reservations.values() if r.status is HoldStatus.ACTIVE]
    assert sum(h.quantity for r in allocated for h in r.lines) == 5
    assert all(r.released_to_warehouse for r in allocated)


def test_short_pick_reallocates_the_short_units_from_another_location() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.receive("WIDGET", NORTH, 1)
    order = mesh.place("ord_1", order_input(("WIDGET", 5)))
    mesh.drain()
    (task,) = mesh.open_picks()
    assert task.location_id == EAST

    mesh.confirm_pick(task, shorts={1: 1})
    mesh.drain()

    north = [r for r in order.reservations.values() if r.location_id == NORTH]
    assert (
        len(north) == 1 and north[0].status is HoldStatus.ACTIVE and north[0].released_to_warehouse
    )
    assert order.lines[0].quantity_picked == 4 and order.lines[0].quantity_allocated == 1
    assert order.status is OrderStatus.RELEASED
    assert mesh.repo.get_position("WIDGET", EAST).on_hand == 0  # 4 picked, 1 written off
    mesh.fulfil_everything()
    assert order.status is OrderStatus.COMPLETED


def test_short_pick_with_no_stock_anywhere_is_backordered() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 5)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0], shorts={1: 2})
    mesh.drain()
    assert order.status is OrderStatus.BACKORDERED
    assert order.lines[0].quantity_backordered == 2 and order.lines[0].quantity_picked == 3
    assert isinstance(mesh.run_commands[-1], RequestAvailability)


def test_placing_without_a_snapshot_asks_for_availability_first() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)), with_availability=False)
    assert mesh.commands == [RequestAvailability("ord_1", 1, ("WIDGET",))]
    placed = mesh.order_events[0]
    assert isinstance(placed, OrderPlaced) and placed.lines[0].quantity_ordered == 2


def test_stock_arriving_during_a_planning_round_is_not_missed() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 4)
    order = mesh.place("ord_1", order_input(("WIDGET", 5)), with_availability=False)
    mesh.run_command()  # the availability snapshot says 4
    mesh.receive("WIDGET", WEST, 10)  # arrives before the snapshot is used...
    mesh.deliver(len(mesh.inbox) - 1)  # ...and its event reaches the order first
    mesh.drain()
    assert order.lines[0].quantity_backordered == 0
    assert order.lines[0].quantity_allocated == 5
    assert order.status is OrderStatus.RELEASED


def test_timeline_records_consumed_events_with_ids_and_the_step_after() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 1)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks()[0])
    (_, pick) = mesh.inbox.pop()
    ctx = mesh.clock.ctx(
        "corr-pick", event_id="evt_42", event_type="crossdock.inventory.pick_completed.v1"
    )

    mesh.saga.apply(order, pick, ctx)

    event_entry, status_entry = order.timeline[-2:]
    assert event_entry.kind is TimelineEntryKind.EVENT
    assert (event_entry.event_id, event_entry.event_type, event_entry.correlation_id) == (
        "evt_42",
        "crossdock.inventory.pick_completed.v1",
        "corr-pick",
    )
    assert event_entry.step is FulfillmentStep.AWAIT_SHIPMENT  # the step after the entry
    assert (status_entry.from_status, status_entry.to_status) == (
        OrderStatus.RELEASED,
        OrderStatus.PICKED,
    )
    times = [e.occurred_at for e in order.timeline]
    assert times == sorted(times)


def test_demand_that_appears_during_a_round_is_planned_with_a_fresh_snapshot() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.receive("GADGET", WEST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 5), ("GADGET", 5)))
    mesh.drain()
    east, west = sorted(mesh.open_picks(), key=lambda t: t.location_id)
    mesh.confirm_pick(east, shorts={1: 1})
    mesh.confirm_pick(west, shorts={2: 1})
    mesh.deliver(0)  # the east short starts a round...
    mesh.run_command()  # ...whose snapshot is taken now: no spare gadgets anywhere
    mesh.receive("GADGET", NORTH, 5)  # the order does not want gadgets yet: no event for it
    mesh.deliver(0)  # the west short: new demand while the round is out

    mesh.drain()

    north = [r for r in order.reservations.values() if r.location_id == NORTH]
    assert [(h.sku, h.quantity) for r in north for h in r.lines] == [("GADGET", 1)]
    assert order.lines[0].quantity_backordered == 1  # no widget anywhere
    assert order.lines[1].quantity_backordered == 0


def test_stock_arriving_while_reservations_are_in_flight_is_not_missed() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 5)))  # plans 5 at EAST, not sent yet
    rival = inv.ReserveStock(
        "ord_rival",
        EAST,
        (inv.ReserveLine(1, "WIDGET", 3),),
        inv.ReservationPolicy.PARTIAL,
        "rival-key",
    )
    inv.reserve(mesh.repo, mesh.ids, rival, mesh.clock.now)  # another order wins 3 units
    mesh.receive("WIDGET", WEST, 10)  # arrives while our reservation is in flight
    mesh.deliver()  # the order hears of it first

    mesh.drain()  # our reservation comes back 2 of 5: plan again instead of backordering

    assert order.lines[0].quantity_backordered == 0
    assert sorted(
        (r.location_id, sum(h.quantity for h in r.lines)) for r in order.reservations.values()
    ) == [(EAST, 2), (WEST, 3)]
