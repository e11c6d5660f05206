"""Adjustments, receipts and availability.

Receipts and adjustments record physical truth, so they are accepted at inactive locations and
for inactive items too; only new reservations respect the active flags.

A receipt line's condition says where its units go: SELLABLE into on hand, anything else
(damaged, scrap, quarantine) into the position's non-sellable quantity, which is never
available and never reserved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.inventory.domain import ids as id_kinds
from services.inventory.domain.errors import (
    FieldViolation,
    IdempotencyKeyReused,
    InsufficientStockForAdjustment,
    PreconditionViolation,
    invalid,
    not_found,
)
from services.inventory.domain.events import InventoryEvent, StockAdjusted, StockReceived
from services.inventory.domain.ids import IdSource
from services.inventory.domain.ledger import PositionChanges, fingerprint
from services.inventory.domain.model import (
    Adjustment,
    AdjustmentReason,
    Item,
    MovementKind,
    Position,
    Receipt,
    ReceiptLine,
    ReceiptSource,
)
from services.inventory.domain.repository import InventoryRepository

# Reasons whose direction is fixed; a cycle count may go either way.
_REASON_SIGN = {
    AdjustmentReason.FOUND: 1,
    AdjustmentReason.DAMAGE: -1,
    AdjustmentReason.SHRINKAGE: -1,
}


@dataclass(frozen=True)
class AdjustStock:
    """A signed correction of on hand with its reason."""

    sku: str
    location_id: str
    quantity_delta: int
    reason: AdjustmentReason
    note: str
    idempotency_key: str


@dataclass(frozen=True)
class AdjustOutcome:
    """The recorded adjustment and the position now; a replay has no events."""

    adjustment: Adjustment
    position: Position
    events: tuple[InventoryEvent, ...]
    replayed: bool = False


@dataclass(frozen=True)
class ReceiveStock:
    """Stock arriving at a location against a purchase order, transfer, return, cancelled
    shipment or parcel returned to sender."""

    location_id: str
    source: ReceiptSource
    source_reference: str
    lines: tuple[ReceiptLine, ...]
    idempotency_key: str


@dataclass(frozen=True)
class ReceiveOutcome:
    """The recorded receipt and the positions after it (SKU order); a replay has no events."""

    receipt: Receipt
    positions: tuple[Position, ...]
    events: tuple[InventoryEvent, ...]
    replayed: bool = False


@dataclass(frozen=True)
class SkuAvailability:
    """What can be promised of one SKU: the total and the per-location positions behind it."""

    sku: str
    quantity_available: int
    positions: tuple[Position, ...]


def adjust(
    repo: InventoryRepository, ids: IdSource, request: AdjustStock, now: datetime
) -> AdjustOutcome:
    """Apply a signed delta to on hand; it may never take on hand below what is reserved."""
    violations: list[FieldViolation] = []
    if request.quantity_delta == 0:
        violations.append(FieldViolation("quantity_delta", "not_in", "delta must not be zero"))
    sign = _REASON_SIGN.get(request.reason)
    if sign is not None and request.quantity_delta * sign < 0:
        direction = "add" if sign > 0 else "remove"
        violations.append(
            FieldViolation(
                "quantity_delta",
                "reason_sign",
                f"a {request.reason.name.lower()} adjustment must {direction} units",
            )
        )
    if not request.idempotency_key:
        violations.append(FieldViolation("idempotency_key", "required", "required"))
    if violations:
        raise invalid(violations)

    request_fingerprint = fingerprint(
        [
            request.sku,
            request.location_id,
            request.quantity_delta,
            request.reason.name,
            request.note,
        ]
    )
    existing = repo.get_adjustment_by_key(request.idempotency_key)
    if existing is not None:
        if existing.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                f"idempotency key {request.idempotency_key!r} was used for a different adjustment",
                resource_type="adjustment",
                resource_name=existing.adjustment_id,
            )
        position = repo.get_position(existing.sku, existing.location_id)
        return AdjustOutcome(existing, position, (), replayed=True)
    if repo.get_item(request.sku) is None:
        raise not_found("item", request.sku)
    if repo.get_location(request.location_id) is None:
        raise not_found("location", request.location_id)

    changes = PositionChanges(repo)  # the one read the save will compare-and-set against
    before = changes.position(request.sku, request.location_id)
    if before.on_hand + request.quantity_delta < before.reserved:
        raise _below_reserved(before, request.quantity_delta)

    adjustment = Adjustment(
        adjustment_id=ids.new_id(id_kinds.ADJUSTMENT),
        sku=request.sku,
        location_id=request.location_id,
        quantity_delta=request.quantity_delta,
        reason=request.reason,
        note=request.note,
        created_at=now,
        idempotency_key=request.idempotency_key,
        request_fingerprint=request_fingerprint,
    )
    changes.move(
        request.sku,
        request.location_id,
        request.quantity_delta,
        MovementKind.ADJUSTMENT,
        adjustment.adjustment_id,
    )
    position = changes.write(now)[(request.sku, request.location_id)]
    repo.add_adjustment(adjustment)
    return AdjustOutcome(adjustment, position, (StockAdjusted(adjustment, position, now),))


def receive(
    repo: InventoryRepository, ids: IdSource, request: ReceiveStock, now: datetime
) -> ReceiveOutcome:
    """Raise on hand (or non-sellable) by what arrived; lot-controlled SKUs must say which lot,
    and non-sellable lines why they are."""
    violations: list[FieldViolation] = []
    if not request.source_reference:
        violations.append(FieldViolation("source_reference", "required", "required"))
    if not request.idempotency_key:
        violations.append(FieldViolation("idempotency_key", "required", "required"))
    if not request.lines:
        violations.append(FieldViolation("lines", "min_items", "at least one line is required"))
    items = repo.get_items({line.sku for line in request.lines})
    for index, line in enumerate(request.lines):
        if line.quantity <= 0:
            violations.append(
                FieldViolation(f"lines[{index}].quantity", "gt", "quantity must be positive")
            )
        if not line.sellable and not line.reason:
            violations.append(
                FieldViolation(
                    f"lines[{index}].reason",
                    "reason_required",
                    f"say why {line.condition.name.lower()} units are not sellable",
                )
            )
        item = items.get(line.sku)
        if item is None:
            violations.append(
                FieldViolation(f"lines[{index}].sku", "unknown_sku", f"SKU {line.sku!r} unknown")
            )
        elif item.lot_controlled and not line.lot:
            violations.append(
                FieldViolation(
                    f"lines[{index}].lot", "lot_required", f"SKU {line.sku!r} is lot-controlled"
                )
            )
    if violations:
        raise invalid(violations)

    request_fingerprint = fingerprint(
        [
            request.location_id,
            request.source.name,
            request.source_reference,
            [_line_fingerprint(line) for line in request.lines],
        ]
    )
    existing = repo.get_receipt_by_key(request.idempotency_key)
    if existing is not None:
        if existing.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                f"idempotency key {request.idempotency_key!r} was used for a different receipt",
                resource_type="receipt",
                resource_name=existing.receipt_id,
            )
        skus = sorted({line.sku for line in existing.lines})
        stocked = repo.get_positions(skus, existing.location_id)
        positions = tuple(stocked[sku] for sku in skus)
        return ReceiveOutcome(existing, positions, (), replayed=True)
    if repo.get_location(request.location_id) is None:
        raise not_found("location", request.location_id)

    receipt = Receipt(
        receipt_id=ids.new_id(id_kinds.RECEIPT),
        location_id=request.location_id,
        source=request.source,
        source_reference=request.source_reference,
        lines=request.lines,
        created_at=now,
        idempotency_key=request.idempotency_key,
        request_fingerprint=request_fingerprint,
    )
    changes = PositionChanges(repo)
    changes.load((line.sku for line in request.lines), request.location_id)
    for line in request.lines:
        move = changes.move if line.sellable else changes.move_non_sellable
        move(line.sku, request.location_id, line.quantity, MovementKind.RECEIPT, receipt.receipt_id)
    after = changes.write(now)
    repo.add_receipt(receipt)
    positions = tuple(after[key] for key in sorted(after))
    return ReceiveOutcome(receipt, positions, (StockReceived(receipt, positions, now),))


def availability(
    repo: InventoryRepository, skus: tuple[str, ...], location_ids: tuple[str, ...] = ()
) -> tuple[SkuAvailability, ...]:
    """What can be promised per SKU (request order), per location and in total.

    Only active locations count: an inactive one takes no reservations, so its stock cannot be
    promised. `location_ids` narrows the answer; empty means the whole network.
    """
    positions = repo.positions_at_active_locations(dict.fromkeys(skus))
    return _availability_of(positions, skus, location_ids)


def availability_with_items(
    repo: InventoryRepository, skus: tuple[str, ...], location_ids: tuple[str, ...] = ()
) -> tuple[tuple[SkuAvailability, ...], dict[str, Item]]:
    """`availability`, and the item master entries of `skus` (unknown SKUs are absent), read
    together: order's capture checks both in its one call."""
    positions, items = repo.active_positions_and_items(dict.fromkeys(skus))
    return _availability_of(positions, skus, location_ids), items


def _availability_of(
    positions: Iterable[Position], skus: tuple[str, ...], location_ids: tuple[str, ...]
) -> tuple[SkuAvailability, ...]:
    """Per SKU of `skus` (request order), its `positions` (at active locations, each SKU's in
    location order) at `location_ids` (empty: all) and what they can promise in total."""
    wanted = set(location_ids)
    by_sku: dict[str, list[Position]] = {sku: [] for sku in skus}
    for position in positions:
        if not wanted or position.location_id in wanted:
            by_sku[position.sku].append(position)
    answer = []
    for sku in skus:
        positions = tuple(by_sku[sku])
        total = sum(max(0, p.available) for p in positions)
        answer.append(SkuAvailability(sku, total, positions))
    return tuple(answer)


def _line_fingerprint(line: ReceiptLine) -> list[object]:
    # A plain sellable line keeps the digest it had before conditions existed, so retrying a
    # receipt recorded by an older version still replays instead of "key reused".
    if line.sellable and not line.reason:
        return [line.sku, line.quantity, line.lot]
    return [line.sku, line.quantity, line.lot, line.condition.name, line.reason]


def _below_reserved(before: Position, delta: int) -> InsufficientStockForAdjustment:
    where = f"{before.sku}@{before.location_id}"
    description = (
        f"on hand {before.on_hand} + {delta} = {before.on_hand + delta} would fall below the "
        f"{before.reserved} units reserved; at most {before.available} can be removed until "
        "reservations are released or picked"
    )
    return InsufficientStockForAdjustment(
        f"cannot adjust {where}: {description}",
        violations=[PreconditionViolation("STOCK_RESERVED", where, description)],
        metadata={
            "sku": before.sku,
            "location_id": before.location_id,
            "on_hand": str(before.on_hand),
            "reserved": str(before.reserved),
            "available": str(before.available),
            "quantity_delta": str(delta),
        },
    )
