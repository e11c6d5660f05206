"""Releasing: giving held stock back, for the whole reservation or for some of its lines.

A release only moves `reserved`, never on hand, and keeps the reservation's open pick task in
step with what is still held: withdrawn when nothing is, amended to the remaining lines when
something is. A consumed reservation cannot be released: its units already left the shelf.

A release and a pick confirmation of the same reservation both save every position the released
lines are on, so the positions' compare-and-set serialises them: whichever commits second
conflicts, is re-run on the new state, and is refused there (not active, or lines that no
longer match the amended task).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.inventory.domain.errors import (
    FieldViolation,
    IdempotencyKeyReused,
    ReservationNotActive,
    invalid,
    not_found,
)
from services.inventory.domain.events import InventoryEvent, ReservationReleased
from services.inventory.domain.ledger import PositionChanges, fingerprint
from services.inventory.domain.model import (
    PickStatus,
    PickTask,
    ReleaseAttempt,
    Reservation,
    ReservationLine,
    ReservationStatus,
)
from services.inventory.domain.repository import InventoryRepository
from services.inventory.domain.reservations import ReserveLine


@dataclass(frozen=True)
class ReleaseStock:
    """A request to give held stock back; no `lines` means the whole reservation.

    With lines, `idempotency_key` is required: a partial release is not naturally idempotent
    (releasing one unit twice would give two back), so the key is what makes a retry safe.
    """

    reservation_id: str
    reason: str
    lines: tuple[ReserveLine, ...] = ()
    idempotency_key: str = ""


@dataclass(frozen=True)
class ReleaseOutcome:
    """The reservation after the release, and the open pick tasks it cancelled or amended."""

    reservation: Reservation
    cancelled_pick_tasks: tuple[PickTask, ...]
    events: tuple[InventoryEvent, ...]
    replayed: bool = False
    amended_pick_tasks: tuple[PickTask, ...] = ()


def release(
    repo: InventoryRepository, reservation_id: str, reason: str, now: datetime
) -> ReleaseOutcome:
    """Give a reservation's stock back and cancel its open pick task.

    Releasing twice is harmless (the second call changes nothing and emits nothing).
    """
    reservation = _releasable(repo, reservation_id)
    if reservation.status is ReservationStatus.RELEASED:
        return ReleaseOutcome(reservation, (), (), replayed=True)
    return _release_whole(repo, reservation, reason, now)


def release_lines(
    repo: InventoryRepository, request: ReleaseStock, now: datetime
) -> ReleaseOutcome:
    """Give back only `request.lines` (matched by order line number and SKU).

    The reservation keeps the rest and stays ACTIVE, and its open pick task is amended to the
    remaining lines. This emits no event: `reservation_released` means the whole reservation
    was given back (that is how order reads it), and the caller has the answer already. When
    nothing remains it is the whole release, event included. A reservation already released is
    returned as it is.
    """
    _check_release_request(request)
    # The reason is audit text: a retry worded differently is still the same release.
    request_fingerprint = fingerprint(
        [
            request.reservation_id,
            [[line.order_line_number, line.sku, line.quantity] for line in request.lines],
        ]
    )
    attempt = repo.get_release_attempt(request.idempotency_key)
    if attempt is not None:
        return _replay(repo, attempt, request_fingerprint)
    reservation = _releasable(repo, request.reservation_id)
    if reservation.status is ReservationStatus.RELEASED:
        return ReleaseOutcome(reservation, (), (), replayed=True)

    remaining = _remaining_lines(reservation, request.lines)
    if remaining:
        outcome = _release_part(repo, reservation, request.lines, remaining, now)
    else:
        outcome = _release_whole(repo, reservation, request.reason, now)
    repo.add_release_attempt(
        ReleaseAttempt(
            idempotency_key=request.idempotency_key,
            request_fingerprint=request_fingerprint,
            reservation_id=reservation.reservation_id,
            status=outcome.reservation.status,
            lines=outcome.reservation.lines,
            reason=request.reason,
            created_at=now,
        )
    )
    return outcome


def _releasable(repo: InventoryRepository, reservation_id: str) -> Reservation:
    """The reservation, unless it does not exist or was already picked."""
    reservation = repo.get_reservation(reservation_id)
    if reservation is None:
        raise not_found("reservation", reservation_id)
    if reservation.status is ReservationStatus.CONSUMED:
        raise ReservationNotActive(
            f"reservation {reservation_id} was already picked and cannot be released",
            metadata={"reservation_id": reservation_id, "status": reservation.status.name},
        )
    return reservation


def _release_whole(
    repo: InventoryRepository, reservation: Reservation, reason: str, now: datetime
) -> ReleaseOutcome:
    changes = PositionChanges(repo)
    changes.load((line.sku for line in reservation.lines), reservation.location_id)
    for line in reservation.lines:
        changes.reserve(line.sku, reservation.location_id, -line.quantity)
    changes.write(now)
    released = replace(
        reservation, status=ReservationStatus.RELEASED, release_reason=reason, updated_at=now
    )
    repo.save_reservation(released)
    cancelled = []
    for task in repo.pick_tasks(reservation_id=reservation.reservation_id, status=PickStatus.OPEN):
        # The stock is no longer held, so the warehouse must not pick it.
        cancelled_task = replace(task, status=PickStatus.CANCELLED, completed_at=now)
        repo.save_pick_task(cancelled_task)
        cancelled.append(cancelled_task)
    return ReleaseOutcome(released, tuple(cancelled), (ReservationReleased(released, reason, now),))


def _release_part(
    repo: InventoryRepository,
    reservation: Reservation,
    lines: tuple[ReserveLine, ...],
    remaining: tuple[ReservationLine, ...],
    now: datetime,
) -> ReleaseOutcome:
    changes = PositionChanges(repo)
    changes.load((line.sku for line in lines), reservation.location_id)
    for line in lines:
        changes.reserve(line.sku, reservation.location_id, -line.quantity)
    changes.write(now)
    kept = replace(reservation, lines=remaining, updated_at=now)
    repo.save_reservation(kept)
    amended = []
    for task in repo.pick_tasks(reservation_id=reservation.reservation_id, status=PickStatus.OPEN):
        # The warehouse may pick only what is still held.
        amended_task = replace(task, lines=remaining)
        repo.save_pick_task(amended_task)
        amended.append(amended_task)
    return ReleaseOutcome(kept, (), (), amended_pick_tasks=tuple(amended))


def _check_release_request(request: ReleaseStock) -> None:
    violations: list[FieldViolation] = []
    if not request.idempotency_key:
        violations.append(
            FieldViolation(
                "idempotency_key", "required", "an idempotency key is required to release lines"
            )
        )
    if not request.lines:
        violations.append(FieldViolation("lines", "min_items", "at least one line is required"))
    for index, line in enumerate(request.lines):
        if line.quantity <= 0:
            violations.append(
                FieldViolation(f"lines[{index}].quantity", "gt", "quantity must be positive")
            )
    if violations:
        raise invalid(violations)


def _remaining_lines(
    reservation: Reservation, lines: tuple[ReserveLine, ...]
) -> tuple[ReservationLine, ...]:
    """The reservation's lines less `lines`; every released line must be held in full."""
    held = {line.order_line_number: line for line in reservation.lines}
    releasing: dict[int, int] = {}
    violations: list[FieldViolation] = []
    for index, line in enumerate(lines):
        holding = held.get(line.order_line_number)
        quantity_held = holding.quantity if holding is not None and holding.sku == line.sku else 0
        if line.order_line_number in releasing:
            violations.append(
                FieldViolation(
                    f"lines[{index}]",
                    "release_line_once",
                    f"line {line.order_line_number} is released twice in one request",
                )
            )
        elif line.quantity > quantity_held:
            violations.append(
                FieldViolation(
                    f"lines[{index}]",
                    "release_within_held",
                    f"reservation {reservation.reservation_id} holds {quantity_held} units of "
                    f"line {line.order_line_number} ({line.sku}); cannot release {line.quantity}",
                )
            )
        releasing[line.order_line_number] = line.quantity
    if violations:
        raise invalid(violations)
    return tuple(
        replace(line, quantity=line.quantity - releasing.get(line.order_line_number, 0))
        for line in reservation.lines
        if line.quantity > releasing.get(line.order_line_number, 0)
    )


def _replay(
    repo: InventoryRepository, attempt: ReleaseAttempt, request_fingerprint: str
) -> ReleaseOutcome:
    if attempt.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {attempt.idempotency_key!r} was used for a different release "
            f"(of reservation {attempt.reservation_id})",
            resource_type="reservation",
            resource_name=attempt.reservation_id,
        )
    reservation = repo.get_reservation(attempt.reservation_id)
    if reservation is None:  # reservations are never deleted
        raise not_found("reservation", attempt.reservation_id)
    first = replace(reservation, status=attempt.status, lines=attempt.lines)
    return ReleaseOutcome(first, (), (), replayed=True)
