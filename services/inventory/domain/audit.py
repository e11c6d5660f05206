"""Invariant checks over a whole inventory state, for tests and for reconciliation jobs.

Each check returns human-readable findings; an empty list means the books balance.
"""

from __future__ import annotations

from collections import defaultdict

from services.inventory.domain.model import PickStatus, ReservationStatus
from services.inventory.domain.repository import InventoryRepository


def invariant_violations(repo: InventoryRepository) -> list[str]:
    """Every broken stock invariant:

    - on hand ≥ reserved ≥ 0 and non-sellable ≥ 0 per position;
    - reserved = Σ lines of the active reservations at that position;
    - on hand = Σ sellable ledger movements at that position, non-sellable = Σ the others
      (stock is conserved);
    - a consumed reservation has exactly one completed pick task, an active one none;
    - an open pick task lists exactly its reservation's lines (partial releases amend it).
    """
    findings: list[str] = []
    held: dict[tuple[str, str], int] = defaultdict(int)
    for reservation in repo.reservations(status=ReservationStatus.ACTIVE):
        for line in reservation.lines:
            held[(line.sku, reservation.location_id)] += line.quantity
    ledger: dict[tuple[str, str], int] = defaultdict(int)
    ledger_non_sellable: dict[tuple[str, str], int] = defaultdict(int)
    for movement in repo.movements():
        books = ledger if movement.sellable else ledger_non_sellable
        books[(movement.sku, movement.location_id)] += movement.quantity_delta

    positions = {(p.sku, p.location_id): p for p in repo.positions()}
    for key in sorted(set(positions) | set(held) | set(ledger) | set(ledger_non_sellable)):
        position = positions.get(key)
        on_hand = position.on_hand if position else 0
        reserved = position.reserved if position else 0
        non_sellable = position.non_sellable if position else 0
        where = f"{key[0]}@{key[1]}"
        if not 0 <= reserved <= on_hand:
            findings.append(f"{where}: on hand {on_hand} < reserved {reserved} or negative")
        if reserved != held[key]:
            findings.append(f"{where}: reserved {reserved} != active reservation lines {held[key]}")
        if on_hand != ledger[key]:
            findings.append(f"{where}: on hand {on_hand} != ledger total {ledger[key]}")
        if non_sellable < 0 or non_sellable != ledger_non_sellable[key]:
            findings.append(
                f"{where}: non-sellable {non_sellable} != ledger total "
                f"{ledger_non_sellable[key]} or negative"
            )

    for reservation in repo.reservations():
        tasks = repo.pick_tasks(reservation_id=reservation.reservation_id)
        completed = [t for t in tasks if t.status is PickStatus.COMPLETED]
        consumed = reservation.status is ReservationStatus.CONSUMED
        if len(completed) != (1 if consumed else 0):
            findings.append(
                f"reservation {reservation.reservation_id} is {reservation.status.name} "
                f"with {len(completed)} completed picks"
            )
        for task in tasks:
            if task.status is PickStatus.OPEN and task.lines != reservation.lines:
                findings.append(
                    f"open pick {task.pick_id} lists other lines than reservation "
                    f"{reservation.reservation_id}"
                )
    return findings
