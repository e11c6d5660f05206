"""Partial release: giving back some lines of a reservation, and what it does to its pick."""

from __future__ import annotations

import pytest

from services.inventory.domain import (
    PickConfirmationLine,
    PickStatus,
    ReleaseStock,
    ReservationLine,
    ReservationReleased,
    ReservationStatus,
    ReserveLine,
    confirm_pick,
    create_pick_task,
    invariant_violations,
    release,
    release_lines,
    reserve,
)
from services.inventory.domain.errors import (
    IdempotencyKeyReused,
    InvalidArgument,
    ReservationNotActive,
)
from tests.inventory.support import EAST, ORDER_A, World, reserve_request


def _reserved(world: World) -> str:
    """ORDER_A holds line 1 = 4 WIDGET and line 2 = 3 GADGET at EAST; returns the reservation."""
    world.receive("WIDGET", EAST, 10)
    world.receive("GADGET", EAST, 5)
    made = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 4), ("GADGET", 3)),
        world.now,
    )
    assert made.reservation is not None
    return made.reservation.reservation_id


def _release(
    reservation_id: str, *lines: tuple[int, str, int], key: str = "release-key-1"
) -> ReleaseStock:
    return ReleaseStock(
        reservation_id, "line cancelled", tuple(ReserveLine(*line) for line in lines), key
    )


def _held(world: World, sku: str) -> tuple[int, int]:
    position = world.repo.get_position(sku, EAST)
    return position.on_hand, position.reserved


def test_a_partial_release_keeps_the_rest_active_and_amends_the_pick(world: World) -> None:
    rid = _reserved(world)
    task = create_pick_task(world.repo, world.ids, rid, world.now).task

    outcome = release_lines(
        world.repo, _release(rid, (1, "WIDGET", 1), (2, "GADGET", 3)), world.tick()
    )

    remaining = (ReservationLine(1, "WIDGET", 3),)
    assert outcome.reservation.status is ReservationStatus.ACTIVE
    assert outcome.reservation.lines == remaining
    assert world.repo.get_reservation(rid) == outcome.reservation
    # Only the released units stop being held; nothing leaves the shelf.
    assert (_held(world, "WIDGET"), _held(world, "GADGET")) == ((10, 3), (5, 0))
    # The reservation is still active, so nothing is announced as released.
    assert outcome.events == ()
    amended = world.repo.get_pick_task(task.pick_id)
    assert amended is not None
    assert (amended.status, amended.lines) == (PickStatus.OPEN, remaining)
    assert outcome.amended_pick_tasks == (amended,)
    assert invariant_violations(world.repo) == []


def test_the_same_key_replays_the_first_answer_and_changes_nothing(world: World) -> None:
    rid = _reserved(world)
    request = _release(rid, (1, "WIDGET", 1))
    first = release_lines(world.repo, request, world.tick())
    release(world.repo, rid, "order cancelled", world.tick())  # a later whole release
    positions = world.repo.positions()

    again = release_lines(world.repo, request, world.tick())

    assert again.replayed and again.events == ()
    assert (again.reservation.status, again.reservation.lines) == (
        ReservationStatus.ACTIVE,
        first.reservation.lines,
    )
    assert world.repo.positions() == positions
    with pytest.raises(IdempotencyKeyReused):
        release_lines(world.repo, _release(rid, (1, "WIDGET", 2)), world.tick())


def test_releasing_everything_that_remains_is_the_whole_release(world: World) -> None:
    rid = _reserved(world)
    task = create_pick_task(world.repo, world.ids, rid, world.now).task
    release_lines(world.repo, _release(rid, (2, "GADGET", 3), key="first-key-1"), world.tick())

    outcome = release_lines(world.repo, _release(rid, (1, "WIDGET", 4)), world.tick())

    released = outcome.reservation
    assert released.status is ReservationStatus.RELEASED
    # Exactly the whole release's event: the reservation with what it gave back.
    assert released.lines == (ReservationLine(1, "WIDGET", 4),)
    assert outcome.events == (ReservationReleased(released, "line cancelled", world.now),)
    assert [t.pick_id for t in outcome.cancelled_pick_tasks] == [task.pick_id]
    assert (_held(world, "WIDGET"), _held(world, "GADGET")) == ((10, 0), (5, 0))
    again = release_lines(world.repo, _release(rid, (1, "WIDGET", 4)), world.tick())
    assert again.replayed and again.reservation == released and again.events == ()
    assert invariant_violations(world.repo) == []


def test_only_held_quantities_can_be_released(world: World) -> None:
    rid = _reserved(world)
    request = _release(rid, (9, "WIDGET", 1), (2, "WIDGET", 1), (1, "WIDGET", 5))

    with pytest.raises(InvalidArgument) as caught:
        release_lines(world.repo, request, world.tick())

    violations = caught.value.violations
    assert [v.field for v in violations] == ["lines[0]", "lines[1]", "lines[2]"]
    assert "holds 0 units of line 9" in violations[0].description
    assert "holds 0 units of line 2 (WIDGET)" in violations[1].description  # line 2 is GADGET
    assert "holds 4 units of line 1" in violations[2].description
    assert (_held(world, "WIDGET"), _held(world, "GADGET")) == ((10, 4), (5, 3))


def test_a_line_may_be_released_once_per_request(world: World) -> None:
    rid = _reserved(world)
    with pytest.raises(InvalidArgument) as caught:
        release_lines(world.repo, _release(rid, (1, "WIDGET", 1), (1, "WIDGET", 1)), world.now)
    assert [v.field for v in caught.value.violations] == ["lines[1]"]


def test_releasing_lines_needs_an_idempotency_key(world: World) -> None:
    rid = _reserved(world)
    with pytest.raises(InvalidArgument) as caught:
        release_lines(world.repo, _release(rid, (1, "WIDGET", 1), key=""), world.now)
    assert [v.field for v in caught.value.violations] == ["idempotency_key"]
    assert _held(world, "WIDGET") == (10, 4)


def test_a_picked_reservation_cannot_be_released_even_partly(world: World) -> None:
    rid = _reserved(world)
    task = create_pick_task(world.repo, world.ids, rid, world.now).task
    confirm_pick(
        world.repo,
        world.ids,
        task.pick_id,
        (PickConfirmationLine(1, "WIDGET", 4), PickConfirmationLine(2, "GADGET", 3)),
        world.tick(),
    )

    with pytest.raises(ReservationNotActive) as partly:
        release_lines(world.repo, _release(rid, (1, "WIDGET", 1)), world.tick())
    with pytest.raises(ReservationNotActive) as wholly:
        release(world.repo, rid, "cancel", world.tick())
    assert partly.value.reason == wholly.value.reason == "RESERVATION_NOT_ACTIVE"
    assert partly.value.message == wholly.value.message


def test_a_released_reservation_is_returned_as_it_is(world: World) -> None:
    rid = _reserved(world)
    released = release(world.repo, rid, "order cancelled", world.tick()).reservation

    outcome = release_lines(world.repo, _release(rid, (1, "WIDGET", 1)), world.tick())

    assert outcome.replayed and outcome.reservation == released and outcome.events == ()


def test_a_confirmation_of_the_lines_before_the_amendment_is_refused(world: World) -> None:
    rid = _reserved(world)
    task = create_pick_task(world.repo, world.ids, rid, world.now).task
    release_lines(world.repo, _release(rid, (1, "WIDGET", 1), (2, "GADGET", 3)), world.tick())
    stale = (PickConfirmationLine(1, "WIDGET", 4), PickConfirmationLine(2, "GADGET", 3))

    with pytest.raises(InvalidArgument) as caught:
        confirm_pick(world.repo, world.ids, task.pick_id, stale, world.tick())

    assert {v.field for v in caught.value.violations} == {
        "lines[0].quantity_short",
        "lines[1].order_line_number",
    }
    current = (PickConfirmationLine(1, "WIDGET", 2, 1),)
    confirm_pick(world.repo, world.ids, task.pick_id, current, world.tick())
    # 2 picked and 1 written off of the 3 still held; the released units stay on the shelf.
    assert (_held(world, "WIDGET"), _held(world, "GADGET")) == ((7, 0), (5, 0))
    assert invariant_violations(world.repo) == []
