"""Reserve and release rules of the inventory domain."""

from __future__ import annotations

import pytest

from services.inventory.domain import (
    InMemoryInventory,
    Position,
    ReservationPolicy,
    ReservationReleased,
    ReservationStatus,
    Shortfall,
    StockReserved,
    create_pick_task,
    invariant_violations,
    release,
    reserve,
)
from services.inventory.domain.errors import (
    IdempotencyKeyReused,
    InvalidArgument,
    LocationInactive,
    NotFound,
    ReservationNotActive,
)
from services.kit.errors import Conflict
from tests.inventory.support import CLOSED, EAST, ORDER_A, ORDER_B, WEST, World, reserve_request

PARTIAL = ReservationPolicy.PARTIAL


def test_all_or_nothing_reserves_every_line(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    world.receive("GADGET", EAST, 3)

    outcome = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 4), ("GADGET", 3)),
        world.now,
    )

    assert outcome.reservation is not None
    assert outcome.reservation.status is ReservationStatus.ACTIVE
    assert [(line.sku, line.quantity) for line in outcome.reservation.lines] == [
        ("WIDGET", 4),
        ("GADGET", 3),
    ]
    assert outcome.shortfalls == ()
    assert outcome.events == (StockReserved(outcome.reservation, world.now),)
    widget = world.repo.get_position("WIDGET", EAST)
    assert (widget.on_hand, widget.reserved, widget.available) == (10, 4, 6)
    assert invariant_violations(world.repo) == []


def test_all_or_nothing_holds_nothing_when_one_line_is_short(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    world.receive("GADGET", EAST, 1)

    outcome = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 4), ("GADGET", 3)),
        world.now,
    )

    assert outcome.reservation is None
    assert outcome.events == ()
    # Nothing was held, so every line is short by its full quantity.
    assert outcome.shortfalls == (Shortfall(1, "WIDGET", 4), Shortfall(2, "GADGET", 3))
    assert world.repo.get_position("WIDGET", EAST).reserved == 0
    assert world.repo.get_position("GADGET", EAST).reserved == 0


def test_partial_holds_what_is_available_and_reports_the_rest(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    world.receive("GADGET", EAST, 1)

    outcome = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 4), ("GADGET", 3), policy=PARTIAL),
        world.now,
    )

    assert outcome.reservation is not None
    assert [(line.sku, line.quantity) for line in outcome.reservation.lines] == [
        ("WIDGET", 4),
        ("GADGET", 1),
    ]
    assert outcome.shortfalls == (Shortfall(2, "GADGET", 2),)
    assert world.repo.get_position("GADGET", EAST).available == 0


def test_partial_with_nothing_available_makes_no_reservation(world: World) -> None:
    outcome = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 2), policy=PARTIAL),
        world.now,
    )
    assert outcome.reservation is None
    assert outcome.shortfalls == (Shortfall(1, "WIDGET", 2),)
    assert world.repo.reservations() == []


def test_two_lines_of_one_sku_never_double_count_a_unit(world: World) -> None:
    world.receive("WIDGET", EAST, 5)
    outcome = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 3), ("WIDGET", 3), policy=PARTIAL),
        world.now,
    )
    assert outcome.reservation is not None
    assert [line.quantity for line in outcome.reservation.lines] == [3, 2]
    assert world.repo.get_position("WIDGET", EAST).reserved == 5


def test_same_key_and_request_returns_the_same_reservation_without_changes(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    request = reserve_request(ORDER_A, EAST, ("WIDGET", 4))
    first = reserve(world.repo, world.ids, request, world.now)

    again = reserve(world.repo, world.ids, request, world.tick())

    assert again.replayed and again.events == ()
    assert again.reservation == first.reservation
    assert world.repo.get_position("WIDGET", EAST).reserved == 4
    assert len(world.repo.reservations()) == 1


def test_a_failed_attempt_replays_as_failed_even_after_stock_arrives(world: World) -> None:
    request = reserve_request(ORDER_A, EAST, ("WIDGET", 4))
    assert reserve(world.repo, world.ids, request, world.now).reservation is None
    world.receive("WIDGET", EAST, 10)

    again = reserve(world.repo, world.ids, request, world.tick())

    assert again.replayed and again.reservation is None
    assert again.shortfalls == (Shortfall(1, "WIDGET", 4),)
    assert world.repo.get_position("WIDGET", EAST).reserved == 0


def test_same_key_with_a_different_request_is_rejected(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 4)), world.now)

    with pytest.raises(IdempotencyKeyReused) as caught:
        reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 5)), world.now)
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert world.repo.get_position("WIDGET", EAST).reserved == 4


def test_unknown_and_inactive_locations_take_no_reservations(world: World) -> None:
    with pytest.raises(NotFound):
        reserve(
            world.repo, world.ids, reserve_request(ORDER_A, "WH-NOPE", ("WIDGET", 1)), world.now
        )
    with pytest.raises(LocationInactive):
        reserve(world.repo, world.ids, reserve_request(ORDER_A, CLOSED, ("WIDGET", 1)), world.now)


def test_bad_lines_are_named_field_by_field(world: World) -> None:
    request = reserve_request(ORDER_A, EAST, ("WIDGET", 0), ("NOPE", 1))
    with pytest.raises(InvalidArgument) as caught:
        reserve(world.repo, world.ids, request, world.now)
    assert [v.field for v in caught.value.violations] == ["lines[0].quantity"]

    with pytest.raises(InvalidArgument) as caught:
        reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("NOPE", 1)), world.now)
    assert [v.field for v in caught.value.violations] == ["lines[0].sku"]


def test_the_last_unit_goes_to_exactly_one_of_two_orders(world: World) -> None:
    world.receive("WIDGET", EAST, 1)
    first = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_A, EAST, ("WIDGET", 1), key="key-a-0001"),
        world.now,
    )
    second = reserve(
        world.repo,
        world.ids,
        reserve_request(ORDER_B, EAST, ("WIDGET", 1), key="key-b-0001"),
        world.now,
    )
    assert first.reservation is not None
    assert second.reservation is None and second.shortfalls == (Shortfall(1, "WIDGET", 1),)


class _RacingRepo(InMemoryInventory):
    """Lets a competing operation commit between our read of a position and our write."""

    def __init__(self) -> None:
        super().__init__()
        self.on_first_read: list[object] = []

    def get_position(self, sku: str, location_id: str) -> Position:
        position = super().get_position(sku, location_id)
        while self.on_first_read:
            competitor = self.on_first_read.pop()
            assert callable(competitor)
            competitor()
        return position


def test_a_concurrent_writer_makes_the_stale_reservation_conflict() -> None:
    world = World()
    racing = _RacingRepo()
    racing.__dict__.update(world.repo.__dict__)
    world.repo = racing
    world.receive("WIDGET", EAST, 1)
    racing.on_first_read.append(
        lambda: reserve(
            racing,
            world.ids,
            reserve_request(ORDER_B, EAST, ("WIDGET", 1), key="key-b-0001"),
            world.now,
        )
    )

    with pytest.raises(Conflict):
        reserve(
            racing,
            world.ids,
            reserve_request(ORDER_A, EAST, ("WIDGET", 1), key="key-a-0001"),
            world.now,
        )

    # The winner holds the unit; the loser wrote nothing and may retry (and then gets a shortfall).
    assert [r.order_id for r in racing.reservations()] == [ORDER_B]
    assert racing.get_position("WIDGET", EAST).reserved == 1
    assert invariant_violations(racing) == []


def test_release_gives_stock_back_once(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    made = reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 4)), world.now)
    assert made.reservation is not None
    rid = made.reservation.reservation_id

    released = release(world.repo, rid, "order cancelled", world.tick())
    assert released.reservation.status is ReservationStatus.RELEASED
    assert released.events == (
        ReservationReleased(released.reservation, "order cancelled", world.now),
    )
    assert world.repo.get_position("WIDGET", EAST).reserved == 0

    again = release(world.repo, rid, "order cancelled", world.tick())
    assert again.replayed and again.events == ()
    assert world.repo.get_position("WIDGET", EAST).reserved == 0
    assert invariant_violations(world.repo) == []


def test_release_withdraws_the_open_pick(world: World) -> None:
    world.receive("WIDGET", WEST, 2)
    made = reserve(world.repo, world.ids, reserve_request(ORDER_A, WEST, ("WIDGET", 2)), world.now)
    assert made.reservation is not None
    task = create_pick_task(world.repo, world.ids, made.reservation.reservation_id, world.now).task

    released = release(world.repo, made.reservation.reservation_id, "cancel", world.tick())

    assert [t.pick_id for t in released.cancelled_pick_tasks] == [task.pick_id]
    with pytest.raises(ReservationNotActive):
        create_pick_task(world.repo, world.ids, made.reservation.reservation_id, world.now)


def test_unknown_reservation_cannot_be_released(world: World) -> None:
    with pytest.raises(NotFound):
        release(world.repo, "rsv_nope", "x", world.now)
