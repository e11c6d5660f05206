"""The order's and the return's status tables (domain/states.py) are what the code obeys: every
status change an order makes is in the table and named on its timeline, terminal statuses have
no way out, and a move outside the table is refused without touching the order."""

from __future__ import annotations

import copy

import pytest

from services.kit.states import IllegalTransition, StateMachine
from services.order.domain import OrderStatus, TimelineEntryKind
from services.order.domain.model import FulfillmentStep
from services.order.domain.progress import Effects, StepTimeouts, _move
from services.order.domain.returns import ReturnStatus
from services.order.domain.states import OPEN, ORDER, RETURN
from tests.order.mesh import Mesh
from tests.order.support import EAST, WEST, order_input


def _status_changes(mesh: Mesh) -> list[tuple[OrderStatus, OrderStatus, str]]:
    return [
        (e.from_status, e.to_status, e.transition)
        for order in mesh.orders.values()
        for e in order.timeline
        if e.kind is TimelineEntryKind.STATUS_CHANGE
        and e.from_status is not None
        and e.to_status is not None
        and e.from_status is not e.to_status
    ]


def test_every_status_change_of_a_busy_mesh_is_a_named_move_of_the_table() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 3)
    mesh.receive("GADGET", WEST, 2)
    mesh.place("ord_1", order_input(("WIDGET", 2), ("GADGET", 1)))
    mesh.place("ord_2", order_input(("WIDGET", 4)))  # partly backordered
    mesh.place("ord_3", order_input(("GADGET", 1)))
    mesh.drain()
    mesh.cancel("ord_3")
    mesh.receive("WIDGET", EAST, 5)
    mesh.fulfil_everything()

    changes = _status_changes(mesh)
    assert {t for _, _, t in changes} >= {"allocate", "release to warehouse", "complete", "cancel"}
    for source, target, name in changes:
        assert name == ORDER.transition(source, target), (source, target, name)
    assert {o: x.status for o, x in mesh.orders.items()} == {
        "ord_1": OrderStatus.COMPLETED,
        "ord_2": OrderStatus.COMPLETED,
        "ord_3": OrderStatus.CANCELLED,
    }


def test_terminal_statuses_have_no_way_out_and_exception_only_recovers_or_ends() -> None:
    moves = ORDER.transitions()
    assert not [m for m in moves if m.source in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)]
    out_of_exception = {m.name for m in moves if m.source is OrderStatus.EXCEPTION}
    assert out_of_exception == {"recover", "complete", "cancel"}
    into_exception = {m.source for m in moves if m.target is OrderStatus.EXCEPTION}
    assert into_exception == OPEN


def test_a_move_outside_the_table_is_refused_and_changes_nothing() -> None:
    mesh = Mesh()
    mesh.receive("WIDGET", EAST, 3)
    order = mesh.place("ord_1", order_input(("WIDGET", 1)))
    mesh.drain()
    mesh.cancel("ord_1")
    before = copy.deepcopy(order)
    fx = Effects(mesh.context(), StepTimeouts())
    with pytest.raises(IllegalTransition) as refused:
        _move(order, fx, OrderStatus.RELEASED, FulfillmentStep.AWAIT_PICK, "")
    assert refused.value.metadata == {"from": "CANCELLED", "to": "RELEASED"}
    assert order == before


def test_the_return_table_allows_the_lifecycle_and_nothing_backwards() -> None:
    assert RETURN.transition(ReturnStatus.AUTHORIZED, ReturnStatus.RECEIVED) == "receive"
    assert RETURN.transition(ReturnStatus.RECEIVED, ReturnStatus.CREDITED) == "credit"
    for source, target in [
        (ReturnStatus.CREDITED, ReturnStatus.RECEIVED),
        (ReturnStatus.RECEIVED, ReturnStatus.AUTHORIZED),
        (ReturnStatus.CANCELLED, ReturnStatus.RECEIVED),
        (ReturnStatus.RECEIVED, ReturnStatus.CANCELLED),
    ]:
        assert not RETURN.allows(source, target)


def test_a_table_is_refused_when_a_move_is_named_twice_or_goes_nowhere() -> None:
    with pytest.raises(ValueError, match="both 'a' and 'b'"):
        StateMachine("x", [("a", {1}, 2), ("b", {1}, 2)])
    with pytest.raises(ValueError, match="to itself"):
        StateMachine("x", [("a", {1}, 1)])
