"""Line figures and the store's "wanted SKUs": what a saga step rewrites and what it leaves."""

from __future__ import annotations

import pytest

from services.order.domain import (
    BackorderPolicy,
    LineFigures,
    OrderStatus,
    ReservationObserved,
    SagaResult,
    wanted_skus,
    wants_stock,
)
from services.order.domain.progress import derive_status, sync_lines
from tests.order.mesh import Mesh
from tests.order.support import EAST, order_input


def test_sync_lines_keeps_the_lines_whose_figures_did_not_change() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    mesh.receive("GADGET", EAST, 10)
    order = mesh.place("ord_1", order_input(("WIDGET", 3), ("GADGET", 2)))
    mesh.drain()
    before = list(order.lines)

    figs = sync_lines(order)

    assert all(after is kept for after, kept in zip(order.lines, before, strict=True))
    assert [f.allocated for f in figs.values()] == [3, 2]

    (task,) = mesh.open_picks("ord_1")
    mesh.confirm_pick(task, shorts={2: 1})
    mesh.drain()

    # Picked and short-picked units moved both lines' figures: both are new values.
    assert [ln.quantity_picked for ln in order.lines] == [3, 1]
    assert order.lines[0] is not before[0] and order.lines[1] is not before[1]


def test_an_input_that_changes_nothing_leaves_the_lines_alone() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    lines = list(order.lines)
    reservation = next(iter(order.reservations.values()))

    result = mesh.apply("ord_1", ReservationObserved(reservation.reservation_id, EAST))

    assert not result.changed
    assert order.lines[0] is lines[0]


def test_wanted_skus_are_the_skus_arriving_stock_could_help() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 2)
    mesh.receive("GADGET", EAST, 5)
    order = mesh.place(
        "ord_1",
        order_input(
            ("WIDGET", 5), ("GADGET", 1), ("GIZMO", 2), policy=BackorderPolicy.SHIP_AVAILABLE
        ),
    )
    mesh.drain()
    assert order.status is OrderStatus.BACKORDERED

    assert wanted_skus(order) == ["GIZMO", "WIDGET"]
    assert wanted_skus(order) == sorted(
        {ln.sku for ln in order.lines if wants_stock(order, ln.sku)}
    )

    mesh.cancel("ord_1")
    assert wanted_skus(order) == []


class _CheckingMesh(Mesh):
    """A mesh that checks every changed saga result's `wanted_skus` as it comes out."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.carried: list[tuple[str, ...]] = []

    def _absorb(self, result: SagaResult) -> None:
        if result.changed:
            # The store writes the result's SKUs instead of computing them again.
            assert result.wanted_skus == tuple(wanted_skus(result.order))
            self.carried.append(result.wanted_skus)
        else:
            assert result.wanted_skus is None
        super()._absorb(result)

    def last_carried(self) -> tuple[str, ...]:
        return self.carried[-1]


def test_a_saga_result_carries_the_wanted_skus_of_the_order_it_leaves() -> None:
    mesh = _CheckingMesh()
    mesh.receive("WIDGET", EAST, 2)
    mesh.receive("GADGET", EAST, 5)
    order = mesh.place("ord_1", order_input(("WIDGET", 5), ("GADGET", 1), ("GIZMO", 2)))
    mesh.drain()
    assert order.status is OrderStatus.BACKORDERED
    assert mesh.last_carried() == ("GIZMO", "WIDGET")

    # Stock arrives: the backorders fill (the wanted SKUs shrink), then everything ships.
    mesh.receive("WIDGET", EAST, 10)
    mesh.receive("GIZMO", EAST, 10)
    mesh.drain()
    assert wanted_skus(order) == []
    task = next(t for t in mesh.open_picks("ord_1") if t.lines[0].sku == "WIDGET")
    mesh.carried.clear()
    mesh.confirm_pick(task, shorts={1: 2})  # a short pick re-plans: WIDGET is wanted again
    mesh.drain()
    assert mesh.carried[0] == ("WIDGET",) and mesh.last_carried() == ()
    mesh.fulfil_everything()
    # Read through the mesh: mypy narrowed `order.status` to BACKORDERED above.
    assert mesh.orders["ord_1"].status is OrderStatus.COMPLETED

    other = mesh.place("ord_2", order_input(("GADGET", 50), external_id="EXT-2"))
    mesh.drain()
    assert wanted_skus(other) == ["GADGET"]
    mesh.cancel("ord_2")
    assert mesh.last_carried() == ()


def _figures(**units: int) -> LineFigures:
    """One line's figures: 4 units ordered, the rest as given (0 otherwise)."""
    fields = dict.fromkeys(LineFigures._fields, 0)
    fields.update(ordered=4, **units)
    return LineFigures(**fields)


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        # The least-advanced stage any line has units in.
        ([_figures(open_demand=1, delivered=3, invoiced=3)], OrderStatus.PLACED),
        ([_figures(held=4), _figures(released=4)], OrderStatus.ALLOCATED),
        ([_figures(held=4), _figures(picked=4), _figures(open_demand=4)], OrderStatus.PLACED),
        ([_figures(picked=4), _figures(released=2, picked=2)], OrderStatus.RELEASED),
        ([_figures(picked=4, shipped=2)], OrderStatus.PICKED),
        ([_figures(picked=4, shipped=4, delivered=3)], OrderStatus.SHIPPED),
        ([_figures(picked=4, shipped=4, delivered=4, invoiced=2)], OrderStatus.DELIVERED),
        # Any unit waiting for stock makes the order BACKORDERED, whatever the other lines.
        (
            [_figures(open_demand=2), _figures(open_demand=4, backordered=4)],
            OrderStatus.BACKORDERED,
        ),
        # Later facts imply earlier ones: an invoice implies shipping, not delivery.
        ([_figures(picked=4, invoiced=4)], OrderStatus.SHIPPED),
        ([_figures(delivered=4)], OrderStatus.DELIVERED),
        # Every unit wanted delivered and invoiced; cancelled units are not wanted.
        ([_figures(delivered=4, invoiced=4), _figures(cancelled=4)], OrderStatus.COMPLETED),
        ([_figures(cancelled=1, delivered=3, invoiced=3)], OrderStatus.COMPLETED),
        ([_figures(delivered=3, invoiced=3)], OrderStatus.PLACED),
    ],
)
def test_derived_status_is_the_least_advanced_stage_of_any_unit(
    lines: list[LineFigures], status: OrderStatus
) -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    assert not order.pending and order.availability_request is None

    assert derive_status(order, dict(enumerate(lines, start=1))) is status


def test_an_order_with_a_reservation_or_availability_request_in_flight_is_not_complete() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 10)
    order = mesh.place("ord_1", order_input(("WIDGET", 3)))
    mesh.drain()
    done = {1: _figures(delivered=4, invoiced=4)}
    assert derive_status(order, done) is OrderStatus.COMPLETED

    order.availability_request = 7
    assert derive_status(order, done) is OrderStatus.PLACED
