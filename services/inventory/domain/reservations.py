"""Reserving: holding stock for orders (releasing it is `releases`).

A reservation holds stock at ONE location for one order; an order split across warehouses holds
one reservation per warehouse. Reserving only moves `reserved`, never `on_hand`: the units are
still on the shelf until a pick confirms they left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.inventory.domain import ids as id_kinds
from services.inventory.domain.errors import (
    FieldViolation,
    IdempotencyKeyReused,
    LocationInactive,
    invalid,
    not_found,
)
from services.inventory.domain.events import InventoryEvent, StockReserved
from services.inventory.domain.ids import IdSource
from services.inventory.domain.ledger import PositionChanges, fingerprint
from services.inventory.domain.model import (
    Reservation,
    ReservationLine,
    ReservationPolicy,
    ReservationStatus,
    ReserveAttempt,
    Shortfall,
)
from services.inventory.domain.repository import InventoryRepository, ItemStock


@dataclass(frozen=True)
class ReserveLine:
    """Hold `quantity` units of `sku` for order line `order_line_number`."""

    order_line_number: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class ReserveStock:
    """A request to hold stock for an order at one location."""

    order_id: str
    location_id: str
    lines: tuple[ReserveLine, ...]
    policy: ReservationPolicy
    idempotency_key: str


@dataclass(frozen=True)
class ReserveOutcome:
    """What was held (None when nothing could be) and which lines fell short by how much.

    `replayed` is True when the idempotency key was seen before: the stored answer is returned
    and nothing changes, so `events` is empty.
    """

    reservation: Reservation | None
    shortfalls: tuple[Shortfall, ...]
    events: tuple[InventoryEvent, ...]
    replayed: bool = False


def reserve(
    repo: InventoryRepository, ids: IdSource, request: ReserveStock, now: datetime
) -> ReserveOutcome:
    """Hold stock for `request.order_id` at `request.location_id`.

    ALL_OR_NOTHING holds every line in full or nothing; PARTIAL holds what is available per line.
    Lines are served in request order, so two lines of one SKU never double-count a unit.
    Shortfalls list every line not held in full with the units missing; when nothing is held
    that is every line at its full quantity.
    """
    _check_reserve_request(request)
    request_fingerprint = fingerprint(_reserve_payload(request))
    attempt = repo.get_reserve_attempt(request.idempotency_key)
    if attempt is not None:
        return _replay(repo, attempt, request_fingerprint)

    # The location, the items and their positions there in one read.
    location, stock = repo.get_location_and_item_stock(
        request.location_id, {line.sku for line in request.lines}
    )
    if location is None:
        raise not_found("location", request.location_id)
    if not location.active:
        raise LocationInactive(
            f"location {request.location_id} takes no new reservations",
            metadata={"location_id": request.location_id},
        )
    unknown = [
        FieldViolation(f"lines[{index}].sku", "unknown_sku", f"SKU {line.sku!r} does not exist")
        for index, line in enumerate(request.lines)
        if line.sku not in stock
    ]
    if unknown:
        raise invalid(unknown)

    # One read per position, handed to `changes`: the save then compare-and-sets on exactly the
    # version the grant was computed from, so a concurrent reservation makes this one conflict.
    changes = PositionChanges(repo)
    granted = _grant(changes, request, stock)
    if request.policy is ReservationPolicy.ALL_OR_NOTHING and any(
        granted[i] < line.quantity for i, line in enumerate(request.lines)
    ):
        granted = [0] * len(request.lines)
    shortfalls = tuple(
        Shortfall(line.order_line_number, line.sku, line.quantity - granted[i])
        for i, line in enumerate(request.lines)
        if granted[i] < line.quantity
    )

    reservation: Reservation | None = None
    events: tuple[InventoryEvent, ...] = ()
    held = [
        ReservationLine(line.order_line_number, line.sku, granted[i])
        for i, line in enumerate(request.lines)
        if granted[i] > 0
    ]
    if held:
        for line in held:
            changes.reserve(line.sku, request.location_id, line.quantity)
        changes.write(now)
        reservation = Reservation(
            reservation_id=ids.new_id(id_kinds.RESERVATION),
            order_id=request.order_id,
            location_id=request.location_id,
            status=ReservationStatus.ACTIVE,
            lines=tuple(held),
            created_at=now,
            idempotency_key=request.idempotency_key,
            updated_at=now,
        )
        repo.add_reservation(reservation)
        events = (StockReserved(reservation, now),)
    repo.add_reserve_attempt(
        ReserveAttempt(
            idempotency_key=request.idempotency_key,
            request_fingerprint=request_fingerprint,
            order_id=request.order_id,
            location_id=request.location_id,
            reservation_id=reservation.reservation_id if reservation else None,
            shortfalls=shortfalls,
            created_at=now,
        )
    )
    return ReserveOutcome(reservation, shortfalls, events)


def _check_reserve_request(request: ReserveStock) -> None:
    violations: list[FieldViolation] = []
    if not request.order_id:
        violations.append(FieldViolation("order_id", "required", "order_id is required"))
    if not request.idempotency_key:
        violations.append(
            FieldViolation("idempotency_key", "required", "an idempotency key is required")
        )
    if not request.lines:
        violations.append(FieldViolation("lines", "min_items", "at least one line is required"))
    seen: set[int] = set()
    for index, line in enumerate(request.lines):
        if line.quantity <= 0:
            violations.append(
                FieldViolation(f"lines[{index}].quantity", "gt", "quantity must be positive")
            )
        if line.order_line_number <= 0 or line.order_line_number in seen:
            violations.append(
                FieldViolation(
                    f"lines[{index}].order_line_number",
                    "unique_positive",
                    "order_line_number must be positive and appear once",
                )
            )
        seen.add(line.order_line_number)
    if violations:
        raise invalid(violations)


def _reserve_payload(request: ReserveStock) -> dict[str, object]:
    return {
        "order_id": request.order_id,
        "location_id": request.location_id,
        "policy": request.policy.name,
        "lines": [[line.order_line_number, line.sku, line.quantity] for line in request.lines],
    }


def _replay(
    repo: InventoryRepository, attempt: ReserveAttempt, request_fingerprint: str
) -> ReserveOutcome:
    if attempt.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {attempt.idempotency_key!r} was used for a different reservation "
            f"request (order {attempt.order_id} at {attempt.location_id})",
            resource_type="reservation",
            resource_name=attempt.reservation_id or "",
            metadata={"order_id": attempt.order_id, "location_id": attempt.location_id},
        )
    reservation = repo.get_reservation(attempt.reservation_id) if attempt.reservation_id else None
    return ReserveOutcome(reservation, attempt.shortfalls, (), replayed=True)


def _grant(
    changes: PositionChanges, request: ReserveStock, stock: Mapping[str, ItemStock]
) -> list[int]:
    """Units grantable per line, serving lines in order against each SKU's availability."""
    left: dict[str, int] = defaultdict(int)
    skus = sorted({line.sku for line in request.lines})
    changes.loaded(stock[sku].position for sku in skus)
    for sku in skus:
        left[sku] = max(0, changes.available(sku, request.location_id))
    granted = []
    for line in request.lines:
        take = min(left[line.sku], line.quantity)
        left[line.sku] -= take
        granted.append(take)
    return granted
