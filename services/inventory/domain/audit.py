"""Invariant checks over a whole inventory state, for tests and for reconciliation jobs.

Each check returns human-readable findings; an empty list means the books balance.
"""

from __future__ import annotations

from collections import defaultdict

from services.inventory.domain.model import PickStatus, ReservationStatus
from services.inventory.domain.repository import InventoryRepository


def invariant_violations(repo: InventoryRepository) -> list[str]:
    """Every broken stock invariant:

    - on hand ≥ reserved ≥ 0 per position;
    - reserved = Σ lines of the active reservations at that position;
    - on hand = Σ ledger movements at that position (stock is conserved);
    - a consumed reservation has exactly one completed pick task, an active one none.
    """
    findings: list[str] = []
    held: dict[tuple[str, str], int] = defaultdict(int)
    for reservation in repo.reservations(status=ReservationStatus.ACTIVE):
        for line in reservation.lines:
            held[(line.sku, reservation.location_id)] += line.quantity
    ledger: dict[tuple[str, str], int] = defaultdict(int)
    for movement in repo.movements():
        ledger[(movement.sku, movement.location_id)] += movement.quantity_delta

    positions = {(p.sku, p.location_id): p for p in repo.positions()}
    for key in sorted(set(positions) | set(held) | set(ledger)):
        position = positions.get(key)
        on_hand = position.on_hand if position else 0
        reserved = position.reserved if position else 0
        where = f"{key[0]}@{key[1]}"
        if not 0 <= reserved <= on_hand:
            findings.append(f"{where}: on hand {on_hand} < reserved {reserved} or negative")
        if reserved != held[key]:
            findings.append(f"{where}: reserved {reserved} != active reservation lines {held[key]}")
        if on_hand != ledger[key]:
            findings.append(f"{where}: on hand {on_hand} != ledger total {ledger[key]}")

    for reservation in repo.reservations():
        tasks = repo.pick_tasks(reservation_id=reservation.reservation_id)
        completed = [t for t in tasks if t.status is PickStatus.COMPLETED]
        consumed = reservation.status is ReservationStatus.CONSUMED
        if len(completed) != (1 if consumed else 0):
            findings.append(
                f"reservation {reservation.reservation_id} is {reservation.status.name} "
                f"with {len(completed)} completed picks"
            )
    return findings
