"""The storage port inventory operations need, and an in-memory implementation of it.

The store layer implements `InventoryRepository` over SQL inside one unit of work; operations
never commit. `InMemoryInventory` is the fake the unit and stateful tests use (cosmicpython's
FakeRepository) and is complete enough for the warehouse simulator.

Contract every implementation keeps:
- `get_position` returns a zero position (version 0) for a (sku, location) never stocked, and so
  does `get_positions`, which reads several SKUs of one location at once;
- `save_position` is a compare-and-set on `version`: it accepts `version == stored + 1` only and
  raises kit `Conflict` otherwise, which is how two reservations racing for the last unit end
  with exactly one winner; `save_positions` is the same for each of several positions (the SQL
  store runs them as one statement), and `get_item_stock` reads positions as `get_positions`;
- `add_*` records a new row and raises kit `Conflict` when its key is already there (it lost a
  race to a concurrent insert); `save_*` updates, or records a row it does not find;
- lists come back in a stable order (documented per method) so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.inventory.domain.model import (
    Adjustment,
    Item,
    Location,
    Movement,
    PickStatus,
    PickTask,
    Position,
    Receipt,
    ReleaseAttempt,
    Reservation,
    ReservationStatus,
    ReserveAttempt,
)
from services.kit.errors import Conflict


@dataclass(frozen=True)
class ItemStock:
    """A SKU of the item master, whether it is lot-controlled, and its position at the location
    asked about (a zero position, version 0, if never stocked there)."""

    sku: str
    lot_controlled: bool
    position: Position


class InventoryRepository(Protocol):
    """Reads and writes the inventory aggregates; see the module docstring for the contract."""

    def get_item(self, sku: str) -> Item | None: ...
    # the known ones among `skus`, by SKU
    def get_items(self, skus: Collection[str]) -> dict[str, Item]: ...
    def save_item(self, item: Item) -> None: ...
    def items(self) -> list[Item]: ...  # SKU order

    def get_location(self, location_id: str) -> Location | None: ...
    def save_location(self, location: Location) -> None: ...
    def locations(self) -> list[Location]: ...  # id order

    def get_position(self, sku: str, location_id: str) -> Position: ...
    # every one of `skus` at `location_id`, by SKU
    def get_positions(self, skus: Collection[str], location_id: str) -> dict[str, Position]: ...
    # the known ones among `skus`, with their position at `location_id`: one read for an
    # operation that checks the items and then changes their stock
    def get_item_stock(self, skus: Collection[str], location_id: str) -> dict[str, ItemStock]: ...
    # the location (None if unknown) and, if known, get_item_stock(skus, location_id): a
    # reservation's reads in one
    def get_location_and_item_stock(
        self, location_id: str, skus: Collection[str]
    ) -> tuple[Location | None, dict[str, ItemStock]]: ...
    def save_position(self, position: Position) -> None: ...
    # each a save_position, in the order given
    def save_positions(self, positions: Sequence[Position]) -> None: ...
    # SKU then location order; either filter may be None for "all".
    def positions(
        self, sku: str | None = None, location_id: str | None = None
    ) -> list[Position]: ...
    # the stocked positions of `skus` at every location, SKU then location order
    def positions_of_skus(self, skus: Collection[str]) -> list[Position]: ...
    # the same, at active locations only
    def positions_at_active_locations(self, skus: Collection[str]) -> list[Position]: ...
    # positions_at_active_locations(skus) and get_items(skus) in one read; the positions of
    # each SKU in location order
    def active_positions_and_items(
        self, skus: Collection[str]
    ) -> tuple[list[Position], dict[str, Item]]: ...

    def get_reservation(self, reservation_id: str) -> Reservation | None: ...
    # pick `pick_id` (None if unknown) and its reservation, read (and locked) as get_reservation
    # before the task is read: what the lock's holder committed (a release amending or
    # withdrawing the task) is seen whole
    def get_pick_and_reservation(
        self, pick_id: str
    ) -> tuple[PickTask | None, Reservation | None]: ...
    # get_pick_and_reservation, and get_item_stock(skus) at the task's location ({} without a
    # task) read with the task: a pick confirmation's reads
    def get_pick_for_confirmation(
        self, pick_id: str, skus: Collection[str]
    ) -> tuple[PickTask | None, Reservation | None, dict[str, ItemStock]]: ...
    def add_reservation(self, reservation: Reservation) -> None: ...
    def save_reservation(self, reservation: Reservation) -> None: ...
    # creation order
    def reservations(
        self, order_id: str | None = None, status: ReservationStatus | None = None
    ) -> list[Reservation]: ...

    def get_reserve_attempt(self, idempotency_key: str) -> ReserveAttempt | None: ...
    def add_reserve_attempt(self, attempt: ReserveAttempt) -> None: ...

    def get_release_attempt(self, idempotency_key: str) -> ReleaseAttempt | None: ...
    def add_release_attempt(self, attempt: ReleaseAttempt) -> None: ...

    def get_pick_task(self, pick_id: str) -> PickTask | None: ...
    def add_pick_task(self, task: PickTask) -> None: ...
    def save_pick_task(self, task: PickTask) -> None: ...
    # creation order (oldest first)
    def pick_tasks(
        self,
        reservation_id: str | None = None,
        location_id: str | None = None,
        status: PickStatus | None = None,
    ) -> list[PickTask]: ...

    def get_adjustment_by_key(self, idempotency_key: str) -> Adjustment | None: ...
    def add_adjustment(self, adjustment: Adjustment) -> None: ...

    def get_receipt_by_key(self, idempotency_key: str) -> Receipt | None: ...
    def add_receipt(self, receipt: Receipt) -> None: ...

    # appended in the order given
    def add_movements(self, movements: Sequence[Movement]) -> None: ...
    # ledger order
    def movements(
        self, sku: str | None = None, location_id: str | None = None
    ) -> list[Movement]: ...


class InMemoryInventory:
    """A dict-backed InventoryRepository; no transactions, so operations validate before writing."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._locations: dict[str, Location] = {}
        self._positions: dict[tuple[str, str], Position] = {}
        self._reservations: dict[str, Reservation] = {}
        self._attempts: dict[str, ReserveAttempt] = {}
        self._release_attempts: dict[str, ReleaseAttempt] = {}
        self._picks: dict[str, PickTask] = {}
        self._adjustments: list[Adjustment] = []
        self._adjustments_by_key: dict[str, Adjustment] = {}
        self._receipts: list[Receipt] = []
        self._receipts_by_key: dict[str, Receipt] = {}
        self._movements: list[Movement] = []

    # -- item master and locations ---------------------------------------------------------

    def get_item(self, sku: str) -> Item | None:
        return self._items.get(sku)

    def get_items(self, skus: Collection[str]) -> dict[str, Item]:
        found = {sku: self.get_item(sku) for sku in skus}
        return {sku: item for sku, item in found.items() if item is not None}

    def save_item(self, item: Item) -> None:
        self._items[item.sku] = item

    def items(self) -> list[Item]:
        return [self._items[sku] for sku in sorted(self._items)]

    def get_location(self, location_id: str) -> Location | None:
        return self._locations.get(location_id)

    def save_location(self, location: Location) -> None:
        self._locations[location.location_id] = location

    def locations(self) -> list[Location]:
        return [self._locations[key] for key in sorted(self._locations)]

    # -- positions -------------------------------------------------------------------------

    def get_position(self, sku: str, location_id: str) -> Position:
        return self._positions.get((sku, location_id)) or Position(sku, location_id)

    def get_positions(self, skus: Collection[str], location_id: str) -> dict[str, Position]:
        # One get_position per SKU, so a test that hooks get_position sees every read.
        return {sku: self.get_position(sku, location_id) for sku in skus}

    def get_item_stock(self, skus: Collection[str], location_id: str) -> dict[str, ItemStock]:
        # Positions through get_position, so a test that hooks it sees every read.
        return {
            sku: ItemStock(sku, item.lot_controlled, self.get_position(sku, location_id))
            for sku, item in self.get_items(skus).items()
        }

    def get_location_and_item_stock(
        self, location_id: str, skus: Collection[str]
    ) -> tuple[Location | None, dict[str, ItemStock]]:
        location = self.get_location(location_id)
        return location, self.get_item_stock(skus, location_id) if location else {}

    def save_positions(self, positions: Sequence[Position]) -> None:
        for position in positions:
            self.save_position(position)

    def save_position(self, position: Position) -> None:
        key = (position.sku, position.location_id)
        stored_version = self._positions[key].version if key in self._positions else 0
        if position.version != stored_version + 1:
            raise Conflict(
                f"position {position.sku}@{position.location_id} changed concurrently",
                metadata={"stored_version": str(stored_version)},
            )
        self._positions[key] = position

    def positions(self, sku: str | None = None, location_id: str | None = None) -> list[Position]:
        return [
            self._positions[key]
            for key in sorted(self._positions)
            if (sku is None or key[0] == sku) and (location_id is None or key[1] == location_id)
        ]

    def positions_of_skus(self, skus: Collection[str]) -> list[Position]:
        wanted = set(skus)
        return [self._positions[key] for key in sorted(self._positions) if key[0] in wanted]

    def positions_at_active_locations(self, skus: Collection[str]) -> list[Position]:
        active = {key for key, location in self._locations.items() if location.active}
        return [p for p in self.positions_of_skus(skus) if p.location_id in active]

    def active_positions_and_items(
        self, skus: Collection[str]
    ) -> tuple[list[Position], dict[str, Item]]:
        return self.positions_at_active_locations(skus), self.get_items(skus)

    # -- reservations ----------------------------------------------------------------------

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        return self._reservations.get(reservation_id)

    def get_pick_and_reservation(self, pick_id: str) -> tuple[PickTask | None, Reservation | None]:
        task = self._picks.get(pick_id)
        return task, self.get_reservation(task.reservation_id) if task else None

    def get_pick_for_confirmation(
        self, pick_id: str, skus: Collection[str]
    ) -> tuple[PickTask | None, Reservation | None, dict[str, ItemStock]]:
        task, reservation = self.get_pick_and_reservation(pick_id)
        return task, reservation, self.get_item_stock(skus, task.location_id) if task else {}

    def add_reservation(self, reservation: Reservation) -> None:
        if reservation.reservation_id in self._reservations:
            raise Conflict(f"reservation {reservation.reservation_id} was written concurrently")
        self._reservations[reservation.reservation_id] = reservation

    def save_reservation(self, reservation: Reservation) -> None:
        # dicts keep insertion order, and replacing a key keeps its slot: creation order holds.
        self._reservations[reservation.reservation_id] = reservation

    def reservations(
        self, order_id: str | None = None, status: ReservationStatus | None = None
    ) -> list[Reservation]:
        return [
            r
            for r in self._reservations.values()
            if (order_id is None or r.order_id == order_id)
            and (status is None or r.status == status)
        ]

    def get_reserve_attempt(self, idempotency_key: str) -> ReserveAttempt | None:
        return self._attempts.get(idempotency_key)

    def add_reserve_attempt(self, attempt: ReserveAttempt) -> None:
        self._attempts[attempt.idempotency_key] = attempt

    def get_release_attempt(self, idempotency_key: str) -> ReleaseAttempt | None:
        return self._release_attempts.get(idempotency_key)

    def add_release_attempt(self, attempt: ReleaseAttempt) -> None:
        self._release_attempts[attempt.idempotency_key] = attempt

    # -- picks -----------------------------------------------------------------------------

    def get_pick_task(self, pick_id: str) -> PickTask | None:
        return self._picks.get(pick_id)

    def add_pick_task(self, task: PickTask) -> None:
        if task.pick_id in self._picks:
            raise Conflict(f"pick {task.pick_id} was written concurrently")
        self._picks[task.pick_id] = task

    def save_pick_task(self, task: PickTask) -> None:
        self._picks[task.pick_id] = task

    def pick_tasks(
        self,
        reservation_id: str | None = None,
        location_id: str | None = None,
        status: PickStatus | None = None,
    ) -> list[PickTask]:
        return [
            t
            for t in self._picks.values()
            if (reservation_id is None or t.reservation_id == reservation_id)
            and (location_id is None or t.location_id == location_id)
            and (status is None or t.status == status)
        ]

    # -- adjustments, receipts and the ledger ----------------------------------------------

    def get_adjustment_by_key(self, idempotency_key: str) -> Adjustment | None:
        return self._adjustments_by_key.get(idempotency_key)

    def add_adjustment(self, adjustment: Adjustment) -> None:
        self._adjustments.append(adjustment)
        if adjustment.idempotency_key:
            self._adjustments_by_key[adjustment.idempotency_key] = adjustment

    def adjustments(self) -> list[Adjustment]:
        """Every adjustment in the order it was recorded (a test and audit helper)."""
        return list(self._adjustments)

    def get_receipt_by_key(self, idempotency_key: str) -> Receipt | None:
        return self._receipts_by_key.get(idempotency_key)

    def add_receipt(self, receipt: Receipt) -> None:
        self._receipts.append(receipt)
        if receipt.idempotency_key:
            self._receipts_by_key[receipt.idempotency_key] = receipt

    def receipts(self) -> list[Receipt]:
        """Every receipt in the order it was recorded (a test and audit helper)."""
        return list(self._receipts)

    def add_movements(self, movements: Sequence[Movement]) -> None:
        self._movements.extend(movements)

    def movements(self, sku: str | None = None, location_id: str | None = None) -> list[Movement]:
        return [
            m
            for m in self._movements
            if (sku is None or m.sku == sku)
            and (location_id is None or m.location_id == location_id)
        ]


def seed(repo: InventoryRepository, items: Iterable[Item], locations: Iterable[Location]) -> None:
    """Load item master and locations without going through the admin rules (tests, demo)."""
    for item in items:
        repo.save_item(item)
    for location in locations:
        repo.save_location(location)
