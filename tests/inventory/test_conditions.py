"""Stock conditions: non-sellable units are held apart, never on hand and never reserved."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.inventory.domain import (
    ReceiptLine,
    ReceiptSource,
    ReceiveStock,
    ReleaseStock,
    ReserveLine,
    Shortfall,
    StockCondition,
    StockReceived,
    availability,
    create_pick_task,
    invariant_violations,
    receive,
    release_lines,
    reserve,
)
from services.inventory.domain.errors import IdempotencyKeyReused, InvalidArgument
from tests.inventory.support import EAST, ORDER_A, World, reserve_request

DAMAGED, QUARANTINE = StockCondition.DAMAGED, StockCondition.QUARANTINE


def _return(*lines: ReceiptLine, key: str = "return-key-1") -> ReceiveStock:
    return ReceiveStock(EAST, ReceiptSource.RETURN, "RMA-7", lines, key)


def test_a_mixed_return_puts_each_line_where_its_condition_says(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    request = _return(
        ReceiptLine("WIDGET", 3),
        ReceiptLine("WIDGET", 2, condition=DAMAGED, reason="crushed box"),
        ReceiptLine("GADGET", 1, condition=QUARANTINE, reason="to inspect"),
    )

    outcome = receive(world.repo, world.ids, request, world.tick())

    gadget, widget = outcome.positions
    assert (widget.on_hand, widget.available, widget.non_sellable) == (13, 13, 2)
    assert (gadget.on_hand, gadget.available, gadget.non_sellable) == (0, 0, 1)
    assert outcome.events == (StockReceived(outcome.receipt, outcome.positions, world.now),)
    assert [(x.condition, x.reason) for x in outcome.receipt.lines] == [
        (StockCondition.SELLABLE, ""),
        (DAMAGED, "crushed box"),
        (QUARANTINE, "to inspect"),
    ]
    # The ledger keeps both quantities: on hand and non-sellable each equal their movements.
    assert [(m.quantity_delta, m.sellable) for m in world.repo.movements(sku="WIDGET")] == [
        (10, True),
        (3, True),
        (2, False),
    ]
    assert invariant_violations(world.repo) == []


def test_non_sellable_units_are_never_available_or_reserved(world: World) -> None:
    world.receive("WIDGET", EAST, 5, condition=QUARANTINE)

    (network,) = availability(world.repo, ("WIDGET",))
    outcome = reserve(
        world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 1)), world.now
    )

    assert network.quantity_available == 0
    assert outcome.reservation is None and outcome.shortfalls == (Shortfall(1, "WIDGET", 1),)
    assert world.repo.get_position("WIDGET", EAST).non_sellable == 5


def test_non_sellable_units_survive_releases_and_picks_untouched(world: World) -> None:
    world.receive("WIDGET", EAST, 4)
    world.receive("WIDGET", EAST, 2, condition=DAMAGED)
    made = reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 4)), world.now)
    assert made.reservation is not None
    create_pick_task(world.repo, world.ids, made.reservation.reservation_id, world.now)

    release_lines(
        world.repo,
        ReleaseStock(made.reservation.reservation_id, "x", (ReserveLine(1, "WIDGET", 1),), "k-1"),
        world.tick(),
    )

    position = world.repo.get_position("WIDGET", EAST)
    assert (position.on_hand, position.reserved, position.non_sellable) == (4, 3, 2)
    assert invariant_violations(world.repo) == []


def test_non_sellable_lines_must_say_why(world: World) -> None:
    request = _return(
        ReceiptLine("WIDGET", 1, condition=StockCondition.SCRAP),
        ReceiptLine("WIDGET", 1, reason="sellable needs no reason but may have one"),
    )
    with pytest.raises(InvalidArgument) as caught:
        receive(world.repo, world.ids, request, world.now)
    assert [v.field for v in caught.value.violations] == ["lines[0].reason"]
    assert world.repo.positions() == []


def test_the_condition_is_part_of_what_a_receipt_key_stands_for(world: World) -> None:
    line = ReceiptLine("WIDGET", 2, condition=DAMAGED, reason="wet")
    receive(world.repo, world.ids, _return(line), world.now)

    again = receive(world.repo, world.ids, _return(line), world.tick())
    assert again.replayed and again.events == ()
    with pytest.raises(IdempotencyKeyReused):
        receive(world.repo, world.ids, _return(replace(line, condition=QUARANTINE)), world.now)
    assert world.repo.get_position("WIDGET", EAST).non_sellable == 2


def test_the_invariant_checker_sees_non_sellable_units_off_the_books(world: World) -> None:
    world.receive("WIDGET", EAST, 2, condition=DAMAGED)
    position = world.repo.get_position("WIDGET", EAST)
    world.repo.save_position(replace(position, non_sellable=3, version=position.version + 1))
    assert invariant_violations(world.repo) == [
        "WIDGET@WH-EAST: non-sellable 3 != ledger total 2 or negative"
    ]
