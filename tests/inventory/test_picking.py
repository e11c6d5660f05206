"""Pick tasks and pick confirmation, including short-pick stock accounting."""

from __future__ import annotations

import pytest

from services.inventory.domain import (
    AdjustmentReason,
    MovementKind,
    PickCompleted,
    PickConfirmationLine,
    PickStatus,
    ReservationStatus,
    StockAdjusted,
    cancel_pick_task,
    confirm_pick,
    create_pick_task,
    invariant_violations,
    release,
    reserve,
)
from services.inventory.domain.errors import (
    InvalidArgument,
    PickNotOpen,
    ReservationNotActive,
)
from tests.inventory.support import EAST, ORDER_A, World, reserve_request


def _released_pick(world: World, *lines: tuple[str, int]) -> str:
    """Reserve `lines` at EAST for ORDER_A and create its pick task; return the pick id."""
    made = reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, *lines), world.now)
    assert made.reservation is not None
    return create_pick_task(
        world.repo, world.ids, made.reservation.reservation_id, world.now
    ).task.pick_id


def test_pick_task_is_created_once_per_reservation(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    made = reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 2)), world.now)
    assert made.reservation is not None

    first = create_pick_task(world.repo, world.ids, made.reservation.reservation_id, world.now)
    again = create_pick_task(world.repo, world.ids, made.reservation.reservation_id, world.now)

    assert first.created and not again.created
    assert again.task == first.task
    assert first.task.status is PickStatus.OPEN
    assert first.task.lines == made.reservation.lines


def test_full_pick_consumes_the_reservation_and_the_stock(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    pick_id = _released_pick(world, ("WIDGET", 2))

    outcome = confirm_pick(
        world.repo, world.ids, pick_id, (PickConfirmationLine(1, "WIDGET", 2),), world.tick()
    )

    assert outcome.task.status is PickStatus.COMPLETED
    assert [type(e) for e in outcome.events] == [PickCompleted]
    position = world.repo.get_position("WIDGET", EAST)
    assert (position.on_hand, position.reserved) == (3, 0)
    reservation = world.repo.get_reservation(outcome.task.reservation_id)
    assert reservation is not None and reservation.status is ReservationStatus.CONSUMED
    assert invariant_violations(world.repo) == []


def test_short_pick_writes_off_the_missing_units_and_keeps_others_covered(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    pick_id = _released_pick(world, ("WIDGET", 4))
    # Another order holds 6 more units of the same shelf.
    other = reserve(
        world.repo,
        world.ids,
        reserve_request("ord_B", EAST, ("WIDGET", 6), key="other-key-1"),
        world.now,
    )
    assert other.reservation is not None
    before = world.repo.get_position("WIDGET", EAST)

    outcome = confirm_pick(
        world.repo,
        world.ids,
        pick_id,
        (PickConfirmationLine(1, "WIDGET", quantity_picked=3, quantity_short=1),),
        world.tick(),
    )

    after = world.repo.get_position("WIDGET", EAST)
    # 3 left for shipping, 1 written off as shrinkage; the reservation of 4 is consumed.
    assert (after.on_hand, after.reserved) == (before.on_hand - 4, before.reserved - 4)
    assert after.available == before.available  # the other order's 6 units stay covered
    completed, adjusted = outcome.events
    assert isinstance(completed, PickCompleted)
    assert completed.lines[0].quantity_short == 1
    assert isinstance(adjusted, StockAdjusted)
    assert adjusted.adjustment.reason is AdjustmentReason.SHRINKAGE
    assert adjusted.adjustment.quantity_delta == -1
    assert adjusted.adjustment.pick_id == pick_id
    assert adjusted.position == after
    kinds = [(m.kind, m.quantity_delta) for m in world.repo.movements("WIDGET", EAST)]
    assert kinds[-2:] == [(MovementKind.PICK, -3), (MovementKind.ADJUSTMENT, -1)]
    assert invariant_violations(world.repo) == []


def test_lot_controlled_items_need_a_lot_for_picked_units(world: World) -> None:
    world.receive("SERUM", EAST, 5, lot="LOT-7")
    pick_id = _released_pick(world, ("SERUM", 2))

    with pytest.raises(InvalidArgument) as caught:
        confirm_pick(
            world.repo, world.ids, pick_id, (PickConfirmationLine(1, "SERUM", 2),), world.now
        )
    assert [v.field for v in caught.value.violations] == ["lines[0].lot"]
    assert world.repo.get_position("SERUM", EAST).reserved == 2  # nothing was written

    outcome = confirm_pick(
        world.repo,
        world.ids,
        pick_id,
        (PickConfirmationLine(1, "SERUM", 2, lot="LOT-7"),),
        world.now,
    )
    assert outcome.task.confirmed_lines[0].lot == "LOT-7"


def test_a_fully_short_lot_line_needs_no_lot(world: World) -> None:
    world.receive("SERUM", EAST, 2, lot="LOT-7")
    pick_id = _released_pick(world, ("SERUM", 2))
    confirm_pick(
        world.repo,
        world.ids,
        pick_id,
        (PickConfirmationLine(1, "SERUM", 0, quantity_short=2),),
        world.now,
    )
    assert world.repo.get_position("SERUM", EAST).on_hand == 0


@pytest.mark.parametrize(
    ("lines", "fields"),
    [
        ((PickConfirmationLine(1, "WIDGET", 1),), ["lines[0].quantity_short"]),
        ((PickConfirmationLine(1, "WIDGET", 3, quantity_short=1),), ["lines[0].quantity_short"]),
        ((PickConfirmationLine(1, "GADGET", 2),), ["lines[0].sku"]),
        (
            (PickConfirmationLine(1, "WIDGET", 2), PickConfirmationLine(7, "WIDGET", 1)),
            ["lines[1].order_line_number"],
        ),
        ((), ["lines"]),
    ],
)
def test_confirmations_must_account_for_every_reserved_unit(
    world: World, lines: tuple[PickConfirmationLine, ...], fields: list[str]
) -> None:
    world.receive("WIDGET", EAST, 5)
    pick_id = _released_pick(world, ("WIDGET", 2))
    with pytest.raises(InvalidArgument) as caught:
        confirm_pick(world.repo, world.ids, pick_id, lines, world.now)
    assert [v.field for v in caught.value.violations] == fields


def test_confirming_twice_is_a_replay_and_different_figures_are_rejected(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    pick_id = _released_pick(world, ("WIDGET", 2))
    lines = (PickConfirmationLine(1, "WIDGET", 1, quantity_short=1),)
    confirm_pick(world.repo, world.ids, pick_id, lines, world.now)
    on_hand = world.repo.get_position("WIDGET", EAST).on_hand

    again = confirm_pick(world.repo, world.ids, pick_id, lines, world.tick())
    assert again.replayed and again.events == ()
    assert world.repo.get_position("WIDGET", EAST).on_hand == on_hand

    with pytest.raises(PickNotOpen):
        confirm_pick(
            world.repo, world.ids, pick_id, (PickConfirmationLine(1, "WIDGET", 2),), world.now
        )


def test_cancelled_picks_cannot_be_confirmed_and_reservation_stays(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    pick_id = _released_pick(world, ("WIDGET", 2))
    cancelled = cancel_pick_task(world.repo, pick_id, world.now)
    assert cancelled.status is PickStatus.CANCELLED
    assert cancel_pick_task(world.repo, pick_id, world.now) == cancelled  # harmless twice

    with pytest.raises(PickNotOpen):
        confirm_pick(
            world.repo, world.ids, pick_id, (PickConfirmationLine(1, "WIDGET", 2),), world.now
        )
    assert world.repo.get_position("WIDGET", EAST).reserved == 2
    # A new task may be released for the still-active reservation.
    again = create_pick_task(world.repo, world.ids, cancelled.reservation_id, world.now)
    assert again.created and again.task.pick_id != pick_id


def test_a_picked_reservation_cannot_be_released(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    pick_id = _released_pick(world, ("WIDGET", 2))
    task = confirm_pick(
        world.repo, world.ids, pick_id, (PickConfirmationLine(1, "WIDGET", 2),), world.now
    ).task
    with pytest.raises(ReservationNotActive):
        release(world.repo, task.reservation_id, "too late", world.now)
    with pytest.raises(PickNotOpen):
        cancel_pick_task(world.repo, pick_id, world.now)
