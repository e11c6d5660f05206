"""Line figures and the store's "wanted SKUs": what a saga step rewrites and what it leaves."""

from __future__ import annotations

from services.order.domain import (
    BackorderPolicy,
    OrderStatus,
    ReservationObserved,
    wanted_skus,
    wants_stock,
)
from services.order.domain.progress import sync_lines
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
