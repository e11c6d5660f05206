"""Adjustments, receipts, availability, the item master and the invariant checker."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.inventory.domain import (
    AdjustmentReason,
    Item,
    Location,
    ReceiptLine,
    ReceiptSource,
    ReceiveStock,
    StockAdjusted,
    StockReceived,
    adjust,
    availability,
    create_item,
    create_location,
    invariant_violations,
    receive,
    reserve,
    update_item,
    update_location,
)
from services.inventory.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    IdempotencyKeyReused,
    InsufficientStockForAdjustment,
    InvalidArgument,
    NotFound,
)
from services.inventory.domain.ledger import PositionChanges
from services.inventory.domain.model import MovementKind, Position
from services.inventory.domain.repository import InMemoryInventory
from tests.inventory.support import CLOSED, EAST, ORDER_A, WEST, World, reserve_request

FOUND, DAMAGE, COUNT = AdjustmentReason.FOUND, AdjustmentReason.DAMAGE, AdjustmentReason.CYCLE_COUNT


def test_adjustments_change_on_hand_and_emit_stock_adjusted(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    outcome = adjust(
        world.repo, world.ids, world.adjust_request("WIDGET", EAST, -3, DAMAGE), world.now
    )
    assert outcome.position.on_hand == 7
    assert outcome.events == (StockAdjusted(outcome.adjustment, outcome.position, world.now),)
    assert invariant_violations(world.repo) == []


def test_adjusting_below_reserved_is_rejected_precisely(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 6)), world.now)
    before = world.repo.get_position("WIDGET", EAST)

    with pytest.raises(InsufficientStockForAdjustment) as caught:
        adjust(world.repo, world.ids, world.adjust_request("WIDGET", EAST, -5, DAMAGE), world.now)

    error = caught.value
    assert error.reason == "ADJUSTMENT_BELOW_RESERVED"
    assert error.metadata == {
        "sku": "WIDGET",
        "location_id": EAST,
        "on_hand": "10",
        "reserved": "6",
        "available": "4",
        "quantity_delta": "-5",
    }
    assert "at most 4 can be removed" in error.message
    assert error.violations[0].subject == "WIDGET@WH-EAST"
    assert world.repo.get_position("WIDGET", EAST) == before  # nothing written
    # Exactly the unreserved units may go.
    adjust(world.repo, world.ids, world.adjust_request("WIDGET", EAST, -4, DAMAGE), world.now)
    assert world.repo.get_position("WIDGET", EAST).available == 0


@pytest.mark.parametrize(("delta", "reason"), [(-1, FOUND), (2, DAMAGE), (0, COUNT)])
def test_delta_must_be_nonzero_and_match_the_reason(
    world: World, delta: int, reason: AdjustmentReason
) -> None:
    world.receive("WIDGET", EAST, 10)
    with pytest.raises(InvalidArgument) as caught:
        adjust(
            world.repo, world.ids, world.adjust_request("WIDGET", EAST, delta, reason), world.now
        )
    assert [v.field for v in caught.value.violations] == ["quantity_delta"]


def test_cycle_counts_may_go_either_way(world: World) -> None:
    world.adjust("WIDGET", EAST, 5, COUNT)
    world.adjust("WIDGET", EAST, -2, COUNT)
    assert world.repo.get_position("WIDGET", EAST).on_hand == 3


def test_adjustment_idempotency(world: World) -> None:
    request = world.adjust_request("WIDGET", EAST, 5, FOUND, key="adjust-key-1")
    first = adjust(world.repo, world.ids, request, world.now)
    again = adjust(world.repo, world.ids, request, world.tick())
    assert again.replayed and again.events == () and again.adjustment == first.adjustment
    assert world.repo.get_position("WIDGET", EAST).on_hand == 5
    with pytest.raises(IdempotencyKeyReused):
        adjust(world.repo, world.ids, replace(request, quantity_delta=6), world.now)


def test_adjusting_unknown_things_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        adjust(world.repo, world.ids, world.adjust_request("NOPE", EAST, 1, FOUND), world.now)
    with pytest.raises(NotFound):
        adjust(
            world.repo, world.ids, world.adjust_request("WIDGET", "WH-NOPE", 1, FOUND), world.now
        )


def _receipt(*lines: ReceiptLine, key: str = "receipt-key-1", location: str = EAST) -> ReceiveStock:
    return ReceiveStock(location, ReceiptSource.PURCHASE_ORDER, "PO-42", lines, key)


def test_receipts_raise_on_hand_and_report_positions(world: World) -> None:
    outcome = receive(
        world.repo,
        world.ids,
        _receipt(ReceiptLine("WIDGET", 4), ReceiptLine("GADGET", 2), ReceiptLine("WIDGET", 1)),
        world.now,
    )
    assert [(p.sku, p.on_hand) for p in outcome.positions] == [("GADGET", 2), ("WIDGET", 5)]
    assert outcome.events == (StockReceived(outcome.receipt, outcome.positions, world.now),)
    again = receive(
        world.repo,
        world.ids,
        _receipt(ReceiptLine("WIDGET", 4), ReceiptLine("GADGET", 2), ReceiptLine("WIDGET", 1)),
        world.tick(),
    )
    assert again.replayed and again.events == ()
    assert world.repo.get_position("WIDGET", EAST).on_hand == 5
    with pytest.raises(IdempotencyKeyReused):
        receive(world.repo, world.ids, _receipt(ReceiptLine("WIDGET", 9)), world.now)


def test_receipts_are_accepted_at_inactive_locations(world: World) -> None:
    receive(world.repo, world.ids, _receipt(ReceiptLine("WIDGET", 1), location=CLOSED), world.now)
    assert world.repo.get_position("WIDGET", CLOSED).on_hand == 1


def test_receipt_lines_are_validated_field_by_field(world: World) -> None:
    with pytest.raises(InvalidArgument) as caught:
        receive(
            world.repo,
            world.ids,
            _receipt(ReceiptLine("NOPE", 1), ReceiptLine("SERUM", 2), ReceiptLine("WIDGET", 0)),
            world.now,
        )
    assert [v.field for v in caught.value.violations] == [
        "lines[0].sku",
        "lines[1].lot",
        "lines[2].quantity",
    ]
    assert world.repo.positions() == []


def test_availability_per_location_and_across_the_network(world: World) -> None:
    world.receive("WIDGET", EAST, 10)
    world.receive("WIDGET", WEST, 3)
    receive(world.repo, world.ids, _receipt(ReceiptLine("WIDGET", 50), location=CLOSED), world.now)
    reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 4)), world.now)

    network, gadget = availability(world.repo, ("WIDGET", "GADGET"))
    assert network.quantity_available == 9  # 6 east + 3 west; the closed site does not count
    assert {p.location_id: p.available for p in network.positions} == {EAST: 6, WEST: 3}
    assert gadget.quantity_available == 0 and gadget.positions == ()

    (west_only,) = availability(world.repo, ("WIDGET",), (WEST,))
    assert west_only.quantity_available == 3


def test_item_and_location_admin_rules(world: World) -> None:
    with pytest.raises(AlreadyExists):
        create_item(world.repo, Item("WIDGET", "dupe"))
    with pytest.raises(NotFound):
        update_item(world.repo, Item("NOPE", "x"))
    create_item(world.repo, Item("NEW", "New"))
    with pytest.raises(AlreadyExists):
        create_location(world.repo, Location(EAST, "dupe"))
    with pytest.raises(NotFound):
        update_location(world.repo, Location("WH-NOPE", "x"))
    world.receive("WIDGET", EAST, 2)
    reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 2)), world.now)
    with pytest.raises(FailedPrecondition):
        update_item(world.repo, Item("WIDGET", "Widget", lot_controlled=True))


def test_the_invariant_checker_can_fail(world: World) -> None:
    """Guard against a checker that always passes: tamper with the books and expect findings."""
    world.receive("WIDGET", EAST, 5)
    reserve(world.repo, world.ids, reserve_request(ORDER_A, EAST, ("WIDGET", 2)), world.now)
    position = world.repo.get_position("WIDGET", EAST)
    world.repo.save_position(replace(position, on_hand=9, version=position.version + 1))
    findings = invariant_violations(world.repo)
    assert findings == ["WIDGET@WH-EAST: on hand 9 != ledger total 5"]
    world.repo.save_position(replace(position, reserved=7, version=position.version + 2))
    assert len(invariant_violations(world.repo)) == 2  # reserved > on hand, and != reservations


def test_a_saved_position_changes_only_its_quantities_version_and_time() -> None:
    # PositionChanges rebuilds positions field by field (a hot path): every other field of the
    # position read must come through unchanged, and an untouched one reads as it was.
    repo = InMemoryInventory()
    read_at, saved_at = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC)
    stored = Position("SKU", "LOC", on_hand=7, reserved=2, version=1, updated_at=read_at)
    stored = replace(stored, non_sellable=1)
    repo.save_position(stored)

    changes = PositionChanges(repo)
    assert changes.position("SKU", "LOC") == stored
    changes.reserve("SKU", "LOC", 3)
    changes.move("SKU", "LOC", -1, MovementKind.PICK, "pck_1")
    changes.move_non_sellable("SKU", "LOC", 2, MovementKind.RECEIPT, "rcp_1")
    expected = replace(stored, on_hand=6, reserved=5, non_sellable=3)
    assert changes.position("SKU", "LOC") == expected
    written = changes.write(saved_at)[("SKU", "LOC")]
    assert written == replace(expected, version=2, updated_at=saved_at)
    assert repo.get_position("SKU", "LOC") == written
