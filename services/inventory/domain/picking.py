"""Pick tasks: created when the order service releases a reservation to the warehouse, then
confirmed (or cancelled).

Short-pick stock accounting. A short means the units were expected on the shelf and were not
there, so the book stock was wrong. Confirming a line with `picked + short == reserved`:
- on hand -= picked            (a PICK movement: the units left for shipping);
- on hand -= short             (an ADJUSTMENT with reason SHRINKAGE, linked to the pick);
- reserved -= reserved quantity (the whole reservation line is consumed).
Available (on hand - reserved) is therefore unchanged by a confirmation, so other orders'
reservations stay covered, and no phantom units remain to be promised and shorted again. The
write-off is an ordinary adjustment, so it is audited, emitted as `StockAdjusted`, and undone by
a FOUND adjustment if the units turn up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from services.inventory.domain import ids as id_kinds
from services.inventory.domain.errors import (
    FieldViolation,
    PickNotOpen,
    ReservationNotActive,
    invalid,
    not_found,
)
from services.inventory.domain.events import InventoryEvent, PickCompleted, StockAdjusted
from services.inventory.domain.ids import IdSource
from services.inventory.domain.ledger import PositionChanges
from services.inventory.domain.model import (
    Adjustment,
    AdjustmentReason,
    MovementKind,
    PickConfirmationLine,
    PickStatus,
    PickTask,
    Reservation,
    ReservationStatus,
)
from services.inventory.domain.repository import InventoryRepository, ItemStock


@dataclass(frozen=True)
class PickTaskOutcome:
    """The pick task for a reservation; `created` is False when it already existed."""

    task: PickTask
    created: bool


@dataclass(frozen=True)
class ConfirmPickOutcome:
    """The completed task and the events; a replayed confirmation has no events."""

    task: PickTask
    events: tuple[InventoryEvent, ...]
    replayed: bool = False


def create_pick_task(
    repo: InventoryRepository, ids: IdSource, reservation_id: str, now: datetime
) -> PickTaskOutcome:
    """Ask the warehouse to pick an active reservation; one live task per reservation.

    Idempotent: an open or completed task for the reservation is returned as is, so a redelivered
    `order.released` event never creates a second task.
    """
    reservation = repo.get_reservation(reservation_id)
    if reservation is None:
        raise not_found("reservation", reservation_id)
    for task in repo.pick_tasks(reservation_id=reservation_id):
        if task.status is not PickStatus.CANCELLED:
            return PickTaskOutcome(task, created=False)
    if reservation.status is not ReservationStatus.ACTIVE:
        raise ReservationNotActive(
            f"reservation {reservation_id} is {reservation.status.name.lower()}; "
            "only active reservations can be picked",
            metadata={"reservation_id": reservation_id, "status": reservation.status.name},
        )
    task = PickTask(
        pick_id=ids.new_id(id_kinds.PICK),
        reservation_id=reservation.reservation_id,
        order_id=reservation.order_id,
        location_id=reservation.location_id,
        status=PickStatus.OPEN,
        lines=reservation.lines,
        created_at=now,
    )
    repo.add_pick_task(task)
    return PickTaskOutcome(task, created=True)


def cancel_pick_task(repo: InventoryRepository, pick_id: str, now: datetime) -> PickTask:
    """Withdraw an open pick; the reservation stays active. Cancelling twice is harmless."""
    task = repo.get_pick_task(pick_id)
    if task is None:
        raise not_found("pick task", pick_id)
    if task.status is PickStatus.CANCELLED:
        return task
    if task.status is PickStatus.COMPLETED:
        raise PickNotOpen(
            f"pick {pick_id} was already confirmed and cannot be cancelled",
            metadata={"pick_id": pick_id},
        )
    cancelled = replace(task, status=PickStatus.CANCELLED, completed_at=now)
    repo.save_pick_task(cancelled)
    return cancelled


def confirm_pick(
    repo: InventoryRepository,
    ids: IdSource,
    pick_id: str,
    lines: tuple[PickConfirmationLine, ...],
    now: datetime,
) -> ConfirmPickOutcome:
    """Record what the warehouse picked and consume the reservation (see the module docstring).

    Every reservation line must be confirmed exactly once with picked + short equal to its
    quantity, and lot-controlled items need a lot for picked units. Re-sending the same
    confirmation returns the recorded one; different figures for a confirmed pick are rejected.
    """
    # The reservation locked first, as a release does, and the task read after the lock: a
    # release that committed meanwhile (withdrawing or amending the task) is seen, never half.
    # The items (lot control) and their positions at the task's location come with the task.
    task, reservation, stock = repo.get_pick_for_confirmation(pick_id, {line.sku for line in lines})
    if task is None:
        raise not_found("pick task", pick_id)
    if task.status is PickStatus.CANCELLED:
        raise PickNotOpen(f"pick {pick_id} was cancelled", metadata={"pick_id": pick_id})
    ordered_lines = _check_confirmation(task, lines, stock)
    if task.status is PickStatus.COMPLETED:
        if ordered_lines == task.confirmed_lines:
            return ConfirmPickOutcome(task, (), replayed=True)
        raise PickNotOpen(
            f"pick {pick_id} was already confirmed with different quantities",
            metadata={"pick_id": pick_id},
        )
    if reservation is None or reservation.status is not ReservationStatus.ACTIVE:
        raise ReservationNotActive(
            f"the reservation of pick {pick_id} is no longer active",
            metadata={"pick_id": pick_id, "reservation_id": task.reservation_id},
        )

    changes = PositionChanges(repo)
    # In line order (the ledger rows follow it); a SKU missing from the item master (none
    # should be) is read on its own.
    changes.loaded(stock[line.sku].position for line in ordered_lines if line.sku in stock)
    changes.load((line.sku for line in ordered_lines), task.location_id)
    write_offs: list[Adjustment] = []
    for line in ordered_lines:
        changes.reserve(line.sku, task.location_id, -(line.quantity_picked + line.quantity_short))
        if line.quantity_picked:
            changes.move(
                line.sku, task.location_id, -line.quantity_picked, MovementKind.PICK, pick_id
            )
        if line.quantity_short:
            write_off = _short_write_off(ids, task, line, now)
            changes.move(
                line.sku,
                task.location_id,
                write_off.quantity_delta,
                MovementKind.ADJUSTMENT,
                write_off.adjustment_id,
            )
            write_offs.append(write_off)
    positions = changes.write(now)
    for write_off in write_offs:
        repo.add_adjustment(write_off)
    _consume(repo, reservation, now)
    completed = replace(
        task, status=PickStatus.COMPLETED, confirmed_lines=ordered_lines, completed_at=now
    )
    repo.save_pick_task(completed)
    events: list[InventoryEvent] = [
        PickCompleted(
            pick_id, task.reservation_id, task.order_id, task.location_id, ordered_lines, now
        )
    ]
    events += [StockAdjusted(adj, positions[(adj.sku, adj.location_id)], now) for adj in write_offs]
    return ConfirmPickOutcome(completed, tuple(events))


def _check_confirmation(
    task: PickTask, lines: tuple[PickConfirmationLine, ...], items: Mapping[str, ItemStock]
) -> tuple[PickConfirmationLine, ...]:
    """Validate a confirmation against the task and the known `items` of its lines; return
    its lines in the task's line order."""
    expected = {line.order_line_number: line for line in task.lines}
    by_number: dict[int, PickConfirmationLine] = {}
    violations: list[FieldViolation] = []
    for index, line in enumerate(lines):
        path = f"lines[{index}]"
        wanted = expected.get(line.order_line_number)
        if wanted is None or line.order_line_number in by_number:
            violations.append(
                FieldViolation(
                    f"{path}.order_line_number",
                    "pick_line",
                    f"line {line.order_line_number} is not on pick {task.pick_id} "
                    "or is confirmed twice",
                )
            )
            continue
        by_number[line.order_line_number] = line
        if line.sku != wanted.sku:
            violations.append(
                FieldViolation(f"{path}.sku", "pick_sku", f"line holds {wanted.sku!r}")
            )
        if line.quantity_picked < 0 or line.quantity_short < 0:
            violations.append(
                FieldViolation(f"{path}.quantity_picked", "gte", "quantities cannot be negative")
            )
        elif line.quantity_picked + line.quantity_short != wanted.quantity:
            violations.append(
                FieldViolation(
                    f"{path}.quantity_short",
                    "pick_total",
                    f"picked + short must equal the {wanted.quantity} units reserved",
                )
            )
        item = items.get(line.sku)
        if line.quantity_picked > 0 and item is not None and item.lot_controlled and not line.lot:
            violations.append(
                FieldViolation(f"{path}.lot", "lot_required", f"SKU {line.sku!r} is lot-controlled")
            )
    for number in expected:
        if number not in by_number:
            violations.append(
                FieldViolation("lines", "pick_complete", f"line {number} is not confirmed")
            )
    if violations:
        raise invalid(violations)
    return tuple(by_number[number] for number in expected)


def _short_write_off(
    ids: IdSource, task: PickTask, line: PickConfirmationLine, now: datetime
) -> Adjustment:
    return Adjustment(
        adjustment_id=ids.new_id(id_kinds.ADJUSTMENT),
        sku=line.sku,
        location_id=task.location_id,
        quantity_delta=-line.quantity_short,
        reason=AdjustmentReason.SHRINKAGE,
        note=f"short pick: {line.quantity_short} not found by pick {task.pick_id}",
        created_at=now,
        pick_id=task.pick_id,
    )


def _consume(repo: InventoryRepository, reservation: Reservation, now: datetime) -> None:
    repo.save_reservation(replace(reservation, status=ReservationStatus.CONSUMED, updated_at=now))
