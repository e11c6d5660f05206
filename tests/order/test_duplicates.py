# The saga mutates orders between asserts; mypy would narrow `status` as if it could not.
# mypy: disable-error-code="comparison-overlap"
"""Every saga input is idempotent, rejected inputs change nothing, terminal orders stay put."""

from __future__ import annotations

import copy

import pytest

from services.inventory import domain as inv
from services.order.domain import (
    InvoicePosted,
    LineQuantity,
    OrderStatus,
    PickCompleted,
    PickedLine,
    ReservationFailed,
    ReserveStock,
    ShipmentFailed,
    ShipmentManifested,
)
from services.order.domain.errors import InconsistentInput
from tests.order.mesh import Mesh
from tests.order.support import EAST, WEST, order_input


class EchoMesh(Mesh):
    """Delivers every saga input twice and checks the second delivery is a no-op."""

    seen: set[str]

    def deliver(self, index: int = 0):  # type: ignore[no-untyped-def]
        order_id, saga_input = self.inbox[index]
        first = super().deliver(index)
        snapshot = copy.deepcopy(self.orders[order_id])
        again = self.apply(order_id, saga_input)
        assert not again.changed, saga_input
        assert again.events == () and again.commands == (), saga_input
        assert self.orders[order_id] == snapshot, saga_input
        self.seen.add(type(saga_input).__name__)
        return first


def test_every_input_applied_twice_changes_nothing_the_second_time() -> None:
    mesh = EchoMesh()
    mesh.seen = set()
    mesh.receive("WIDGET", EAST, 3)
    mesh.receive("GADGET", WEST, 1)
    mesh.place("ord_1", order_input(("WIDGET", 5), ("GADGET", 1)), with_availability=False)
    mesh.drain()
    mesh.receive("WIDGET", WEST, 5)  # fills the backorder
    mesh.drain()
    task = mesh.open_picks("ord_1")[0]
    mesh.confirm_pick(task, shorts={task.lines[0].order_line_number: 1})  # short -> re-plan
    mesh.drain()
    # A label failure, then the shipment recovers.
    pick = mesh.shippable()[0]
    mesh.inbox.append(
        ("ord_1", ShipmentFailed(f"shp_{pick.pick_id}", "carrier rejected the label"))
    )
    mesh.drain()
    assert mesh.orders["ord_1"].status is OrderStatus.EXCEPTION
    mesh.fulfil_everything()
    assert mesh.orders["ord_1"].status is OrderStatus.COMPLETED
    # A second order whose reservation fails, then is cancelled: covers the remaining inputs.
    mesh.receive("GADGET", EAST, 1)
    mesh.place("ord_2", order_input(("GADGET", 1)), with_availability=False)
    mesh.run_command()
    mesh.deliver()
    reserve_command = mesh.commands[0]
    assert isinstance(reserve_command, ReserveStock)
    key = reserve_command.idempotency_key
    mesh.commands.clear()
    mesh.inbox.append(("ord_2", ReservationFailed(key, "location closed")))
    mesh.drain()
    mesh.cancel("ord_2")
    mesh.drain()
    # A third order whose reservation an operator releases in inventory: it is re-allocated.
    mesh.receive("GIZMO", EAST, 2)
    mesh.place("ord_3", order_input(("GIZMO", 2)))
    mesh.drain()
    (rid,) = mesh.orders["ord_3"].reservations
    mesh.consume_inventory_events(inv.release(mesh.repo, rid, "operator", mesh.clock.now).events)
    mesh.drain()
    assert mesh.orders["ord_3"].lines[0].quantity_allocated == 2
    assert len(mesh.orders["ord_3"].reservations) == 2

    assert mesh.seen >= {
        "AvailabilityObserved",
        "ReservationMade",
        "ReservationFailed",
        "ReservationObserved",
        "ReservationReleasedObserved",
        "PickCompleted",
        "StockAvailable",
        "ShipmentFailed",
        "ShipmentManifested",
        "ShipmentDelivered",
        "InvoicePosted",
    }


def _released_order(mesh: Mesh) -> str:
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    return next(iter(mesh.orders["ord_1"].reservations))


@pytest.mark.parametrize(
    "bad_input",
    [
        PickCompleted("pck_x", "rsv_unknown", (PickedLine(1, "WIDGET", 2),)),
        PickCompleted("pck_x", "<rid>", (PickedLine(1, "WIDGET", 1),)),  # 1 + 0 != 2 reserved
        PickCompleted("pck_x", "<rid>", (PickedLine(1, "GADGET", 2),)),
        ShipmentManifested("shp_x", EAST, (LineQuantity(1, 3),)),  # more than ordered
        ShipmentManifested("shp_x", EAST, (LineQuantity(9, 1),)),  # no such line
        InvoicePosted("inv_x", "shp_x", (LineQuantity(1, 5),)),
    ],
)
def test_inconsistent_inputs_are_rejected_and_change_nothing(bad_input: object) -> None:
    mesh = Mesh()
    rid = _released_order(mesh)
    if isinstance(bad_input, PickCompleted) and bad_input.reservation_id == "<rid>":
        bad_input = PickCompleted(bad_input.pick_id, rid, bad_input.lines)
    before = copy.deepcopy(mesh.orders["ord_1"])
    with pytest.raises(InconsistentInput):
        mesh.apply("ord_1", bad_input)  # type: ignore[arg-type]
    assert mesh.orders["ord_1"] == before


def test_terminal_orders_stay_terminal() -> None:
    mesh = Mesh()
    _released_order(mesh)
    mesh.fulfil_everything()
    order = mesh.orders["ord_1"]
    assert order.status is OrderStatus.COMPLETED
    before = copy.deepcopy(order)
    mesh.clock.advance(days=365)
    assert not mesh.tick("ord_1").changed
    mesh.apply("ord_1", ShipmentManifested("shp_late", EAST, (LineQuantity(1, 1),)))
    mesh.apply("ord_1", InvoicePosted("inv_late", "shp_late", (LineQuantity(1, 1),)))
    assert order.status is OrderStatus.COMPLETED and order.lines == before.lines


def test_a_new_label_failure_after_a_retry_reopens_the_exception_a_redelivery_does_not() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 2)))
    mesh.drain()
    mesh.confirm_pick(mesh.open_picks("ord_1")[0])
    mesh.drain()
    shipment_id = f"shp_{mesh.shippable()[0].pick_id}"
    failed = ShipmentFailed(shipment_id, "label booking failed: DEADLINE_EXCEEDED")

    def report(event_id: str) -> OrderStatus:
        result = mesh.saga.apply(mesh.orders["ord_1"], failed, mesh.clock.ctx(event_id=event_id))
        mesh.orders["ord_1"] = result.order
        return result.order.status

    assert report("evt-1") is OrderStatus.EXCEPTION
    mesh.retry("ord_1")
    assert mesh.orders["ord_1"].status is not OrderStatus.EXCEPTION
    # The old event again (redelivered) is not news; the same words in a new event are.
    assert report("evt-1") is not OrderStatus.EXCEPTION
    assert report("evt-2") is OrderStatus.EXCEPTION
