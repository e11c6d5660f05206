"""An order's exceptions as events (domain/exception_episodes.py): each stretch in EXCEPTION
is an episode, raised once and cleared once in the saga call that moved the order, with how it
cleared; a retry ends its episode, the next failure is a new one; a new reason while still in
EXCEPTION is the same episode raised again."""

from __future__ import annotations

from datetime import timedelta

from services.order.domain import (
    ExceptionClearance,
    ExceptionState,
    FulfillmentStep,
    OrderExceptionCleared,
    OrderExceptionRaised,
    OrderStatus,
    SagaResult,
    ShipmentFailed,
    StepTimeouts,
)
from tests.order.mesh import Mesh
from tests.order.support import EAST, order_input


def episodes(result: SagaResult) -> list[OrderExceptionRaised | OrderExceptionCleared]:
    return [e for e in result.events if isinstance(e, OrderExceptionRaised | OrderExceptionCleared)]


def released(timeouts: StepTimeouts | None = None) -> Mesh:
    """ord_1 released to the warehouse, its pick not confirmed."""
    mesh = Mesh(timeouts=timeouts or StepTimeouts())
    mesh.receive("WIDGET", EAST, 5)
    mesh.place("ord_1", order_input(("WIDGET", 1)))
    mesh.drain()
    assert mesh.orders["ord_1"].status is OrderStatus.RELEASED
    return mesh


def test_a_timeout_raises_episode_1_a_retry_clears_it_and_the_next_timeout_is_episode_2() -> None:
    mesh = released(StepTimeouts(pick=timedelta(minutes=30)))
    mesh.clock.advance(minutes=30)

    (raised,) = episodes(mesh.tick("ord_1"))
    assert isinstance(raised, OrderExceptionRaised)
    assert (raised.order_id, raised.partner_id, raised.episode, raised.step) == (
        "ord_1",
        mesh.orders["ord_1"].partner_id,
        1,
        FulfillmentStep.AWAIT_PICK,
    )
    assert raised.reason.startswith("AWAIT_PICK not done by") and raised.shipment_id == ""
    assert raised.occurred_at == mesh.clock.now

    mesh.clock.advance(minutes=1)
    (cleared,) = episodes(mesh.retry("ord_1"))
    assert cleared == OrderExceptionCleared(
        "ord_1",
        raised.partner_id,
        1,
        ExceptionClearance.RETRIED,
        FulfillmentStep.AWAIT_PICK,
        raised.reason,
        mesh.clock.now,
    )

    # The retried step times out again: a new episode of the same order.
    mesh.clock.advance(minutes=30)
    (again,) = episodes(mesh.tick("ord_1"))
    assert isinstance(again, OrderExceptionRaised) and again.episode == 2
    assert mesh.orders["ord_1"].exception == ExceptionState(
        FulfillmentStep.AWAIT_PICK, again.reason, again.occurred_at, episode=2
    )

    # The pick arrives after all: the order moves on and episode 2 is over.
    mesh.confirm_pick(mesh.open_picks("ord_1")[0])
    mesh.drain()
    assert mesh.orders["ord_1"].status is OrderStatus.PICKED
    every = [*mesh.published, *mesh.order_events]
    ends = [e for e in every if isinstance(e, OrderExceptionCleared)]
    assert [(e.episode, e.clearance) for e in ends] == [
        (1, ExceptionClearance.RETRIED),
        (2, ExceptionClearance.PROGRESSED),
    ]


def test_a_new_reason_while_in_exception_is_the_same_episode_raised_again() -> None:
    mesh = released()
    (first,) = episodes(mesh.apply("ord_1", ShipmentFailed("shp_a", "no rate")))
    (second,) = episodes(mesh.apply("ord_1", ShipmentFailed("shp_b", "carrier down")))

    assert isinstance(first, OrderExceptionRaised) and isinstance(second, OrderExceptionRaised)
    assert (first.episode, first.shipment_id, first.step) == (
        1,
        "shp_a",
        FulfillmentStep.AWAIT_SHIPMENT,
    )
    assert (second.episode, second.shipment_id, second.reason) == (
        1,
        "shp_b",
        "shipment shp_b: carrier down",
    )
    # The same failure reported twice changes nothing, so publishes nothing.
    assert episodes(mesh.apply("ord_1", ShipmentFailed("shp_b", "carrier down"))) == []

    (cleared,) = episodes(mesh.cancel("ord_1"))
    assert isinstance(cleared, OrderExceptionCleared)
    assert (cleared.episode, cleared.clearance, cleared.reason) == (
        1,
        ExceptionClearance.CANCELLED,
        "shipment shp_b: carrier down",
    )
    assert mesh.orders["ord_1"].exception_episodes == 1


def test_calls_that_touch_no_exception_publish_none_of_these() -> None:
    mesh = released()
    mesh.confirm_pick(mesh.open_picks("ord_1")[0])
    mesh.drain()
    mesh.fulfil_everything()
    assert mesh.orders["ord_1"].status is OrderStatus.COMPLETED
    every = [*mesh.published, *mesh.order_events]
    assert not any(isinstance(e, OrderExceptionRaised | OrderExceptionCleared) for e in every)


def test_an_exception_stored_before_episodes_is_cleared_silently_and_numbered_when_it_changes() -> (
    None
):
    mesh = released()
    order = mesh.orders["ord_1"]
    # What an order stored before episodes existed reads back as: episode 0, no count.
    order.status = OrderStatus.EXCEPTION
    order.exception = ExceptionState(FulfillmentStep.AWAIT_PICK, "stuck", mesh.clock.now)

    assert episodes(mesh.retry("ord_1")) == []  # never raised, so never cleared either

    order.status = OrderStatus.EXCEPTION
    order.exception = ExceptionState(FulfillmentStep.AWAIT_SHIPMENT, "stuck", mesh.clock.now)
    (raised,) = episodes(mesh.apply("ord_1", ShipmentFailed("shp_c", "no rate")))
    assert isinstance(raised, OrderExceptionRaised) and raised.episode == 1
