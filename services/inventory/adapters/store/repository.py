"""`SqlInventory`: the domain's InventoryRepository over SQLAlchemy Core, inside one unit of work.

It also serves the List RPCs' pages, keyset-paged in SQL (services.kit.paging): one indexed
range read per page however deep the caller pages.

It never commits: `Database.run` owns the transaction. Races are settled by the database:
- `save_position` compare-and-sets on `version` (UPDATE ... WHERE version = expected). On
  PostgreSQL the second of two racing updates waits for the first's row lock, then re-checks the
  WHERE and matches nothing; on SQLite BEGIN IMMEDIATE serialises writers outright. Either way
  the loser gets kit `Conflict` and the caller retries the whole unit of work;
- a first INSERT of a position or of an idempotency key that loses to a concurrent one hits a
  unique constraint, which is reported as `Conflict` too (the retry then sees the winner's row).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from services.inventory.adapters.store import codec
from services.inventory.adapters.store import tables as t
from services.inventory.domain.model import (
    Adjustment,
    AdjustmentReason,
    Item,
    Location,
    Movement,
    MovementKind,
    PickStatus,
    PickTask,
    Position,
    Receipt,
    ReceiptSource,
    ReleaseAttempt,
    Reservation,
    ReservationStatus,
    ReserveAttempt,
)
from services.kit.errors import Conflict
from services.kit.paging import decode_token, keyset, next_page

# One page of a list and the token of the next one ("" on the last page).
Page = tuple[list[Any], str]

# The position key in a page token: SKU and location joined by a character neither may contain.
_KEY_SEPARATOR = "\x00"


class SqlInventory:
    """InventoryRepository on one connection (one transaction); see the module docstring."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _insert(self, table: Any, values: dict[str, Any], what: str) -> None:
        # A savepoint keeps the transaction usable on PostgreSQL after a unique violation,
        # so the Conflict can propagate cleanly and the caller's retry starts fresh.
        try:
            with self._conn.begin_nested():
                self._conn.execute(insert(table).values(**values))
        except IntegrityError as exc:
            raise Conflict(f"{what} was written concurrently") from exc

    # -- item master and locations ---------------------------------------------------------

    def get_item(self, sku: str) -> Item | None:
        row = self._conn.execute(select(t.items).where(t.items.c.sku == sku)).first()
        return codec.item_from(row) if row else None

    def save_item(self, item: Item) -> None:
        values = codec.item_row(item)
        done = self._conn.execute(update(t.items).where(t.items.c.sku == item.sku).values(values))
        if done.rowcount == 0:
            self._insert(t.items, values, f"item {item.sku}")

    def items(self) -> list[Item]:
        rows = self._conn.execute(select(t.items).order_by(t.items.c.sku))
        return [codec.item_from(row) for row in rows]

    def items_page(self, *, include_inactive: bool, size: int, token: str) -> Page:
        """Items in SKU order (active only unless `include_inactive`), one page past `token`."""
        table = t.items
        query = select(table)
        if not include_inactive:
            query = query.where(table.c.active.is_(True))
        rows = self._conn.execute(keyset(query, table.c.sku, token, size, key_type=str)).all()
        page, next_token = next_page(rows, size, key=lambda row: row.sku)
        return [codec.item_from(row) for row in page], next_token

    def get_location(self, location_id: str) -> Location | None:
        table = t.locations
        row = self._conn.execute(select(table).where(table.c.location_id == location_id)).first()
        return codec.location_from(row) if row else None

    def save_location(self, location: Location) -> None:
        table = t.locations
        values = codec.location_row(location)
        done = self._conn.execute(
            update(table).where(table.c.location_id == location.location_id).values(values)
        )
        if done.rowcount == 0:
            self._insert(table, values, f"location {location.location_id}")

    def locations(self) -> list[Location]:
        rows = self._conn.execute(select(t.locations).order_by(t.locations.c.location_id))
        return [codec.location_from(row) for row in rows]

    def locations_page(self, *, size: int, token: str) -> Page:
        """Locations in id order, one page past `token`."""
        table = t.locations
        query = keyset(select(table), table.c.location_id, token, size, key_type=str)
        rows = self._conn.execute(query).all()
        page, next_token = next_page(rows, size, key=lambda row: row.location_id)
        return [codec.location_from(row) for row in page], next_token

    # -- positions -------------------------------------------------------------------------

    def get_position(self, sku: str, location_id: str) -> Position:
        table = t.positions
        row = self._conn.execute(
            select(table).where(and_(table.c.sku == sku, table.c.location_id == location_id))
        ).first()
        return _position(row) if row else Position(sku, location_id)

    def save_position(self, position: Position) -> None:
        table = t.positions
        values = {
            "on_hand": position.on_hand,
            "reserved": position.reserved,
            "version": position.version,
            "updated_at": codec.to_epoch(position.updated_at),
            "non_sellable": position.non_sellable,
        }
        where = f"position {position.sku}@{position.location_id}"
        if position.version == 1:
            self._insert(
                table, {"sku": position.sku, "location_id": position.location_id, **values}, where
            )
            return
        done = self._conn.execute(
            update(table)
            .where(
                and_(
                    table.c.sku == position.sku,
                    table.c.location_id == position.location_id,
                    table.c.version == position.version - 1,
                )
            )
            .values(values)
        )
        if done.rowcount != 1:
            raise Conflict(f"{where} changed concurrently")

    def positions(self, sku: str | None = None, location_id: str | None = None) -> list[Position]:
        table = t.positions
        query = select(table).order_by(table.c.sku, table.c.location_id)
        if sku is not None:
            query = query.where(table.c.sku == sku)
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        return [_position(row) for row in self._conn.execute(query)]

    def positions_page(
        self, *, sku: str | None, location_id: str | None, size: int, token: str
    ) -> Page:
        """Positions by SKU then location, one page past `token`, on the primary key.

        The kit's `keyset` pages on one column; a position's key is the pair, so the range is
        a row-value comparison here, with the kit's token codec and page split.
        """
        table = t.positions
        query = select(table)
        if sku is not None:
            query = query.where(table.c.sku == sku)
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        after = decode_token(token, str)
        if after is not None:
            after_sku, _, after_location = after.partition(_KEY_SEPARATOR)
            query = query.where(
                tuple_(table.c.sku, table.c.location_id) > tuple_(after_sku, after_location)
            )
        query = query.order_by(table.c.sku, table.c.location_id).limit(size + 1)
        rows = self._conn.execute(query).all()
        page, next_token = next_page(
            rows, size, key=lambda row: f"{row.sku}{_KEY_SEPARATOR}{row.location_id}"
        )
        return [_position(row) for row in page], next_token

    # -- reservations ----------------------------------------------------------------------

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        table = t.reservations
        # Locked (PostgreSQL; SQLite has one writer): a release and a pick confirmation of the
        # same reservation serialize on this row, so the second sees what the first decided.
        row = self._conn.execute(
            select(table).where(table.c.reservation_id == reservation_id).with_for_update()
        ).first()
        return _reservation(row) if row else None

    def save_reservation(self, reservation: Reservation) -> None:
        table = t.reservations
        values = {
            "order_id": reservation.order_id,
            "location_id": reservation.location_id,
            "status": reservation.status.value,
            "lines": codec.dump_reservation_lines(reservation.lines),
            "created_at": codec.to_epoch(reservation.created_at),
            "idempotency_key": reservation.idempotency_key,
            "release_reason": reservation.release_reason,
            "updated_at": codec.to_epoch(reservation.updated_at),
        }
        done = self._conn.execute(
            update(table).where(table.c.reservation_id == reservation.reservation_id).values(values)
        )
        if done.rowcount == 0:
            self._insert(
                table,
                {"reservation_id": reservation.reservation_id, **values},
                f"reservation {reservation.reservation_id}",
            )

    def reservations(
        self, order_id: str | None = None, status: ReservationStatus | None = None
    ) -> list[Reservation]:
        table = t.reservations
        query = select(table).order_by(table.c.seq)
        if order_id is not None:
            query = query.where(table.c.order_id == order_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        return [_reservation(row) for row in self._conn.execute(query)]

    def get_reserve_attempt(self, idempotency_key: str) -> ReserveAttempt | None:
        table = t.reserve_attempts
        row = self._conn.execute(
            select(table).where(table.c.idempotency_key == idempotency_key)
        ).first()
        if row is None:
            return None
        return ReserveAttempt(
            idempotency_key=row.idempotency_key,
            request_fingerprint=row.request_fingerprint,
            order_id=row.order_id,
            location_id=row.location_id,
            reservation_id=row.reservation_id,
            shortfalls=codec.load_shortfalls(row.shortfalls),
            created_at=codec.required_time(row.created_at),
        )

    def add_reserve_attempt(self, attempt: ReserveAttempt) -> None:
        values = {
            "idempotency_key": attempt.idempotency_key,
            "request_fingerprint": attempt.request_fingerprint,
            "order_id": attempt.order_id,
            "location_id": attempt.location_id,
            "reservation_id": attempt.reservation_id,
            "shortfalls": codec.dump_shortfalls(attempt.shortfalls),
            "created_at": codec.to_epoch(attempt.created_at),
        }
        self._insert(t.reserve_attempts, values, f"idempotency key {attempt.idempotency_key}")

    def get_release_attempt(self, idempotency_key: str) -> ReleaseAttempt | None:
        table = t.release_attempts
        row = self._conn.execute(
            select(table).where(table.c.idempotency_key == idempotency_key)
        ).first()
        if row is None:
            return None
        return ReleaseAttempt(
            idempotency_key=row.idempotency_key,
            request_fingerprint=row.request_fingerprint,
            reservation_id=row.reservation_id,
            status=ReservationStatus(row.status),
            lines=codec.load_reservation_lines(row.lines),
            reason=row.reason,
            created_at=codec.required_time(row.created_at),
        )

    def add_release_attempt(self, attempt: ReleaseAttempt) -> None:
        values = {
            "idempotency_key": attempt.idempotency_key,
            "request_fingerprint": attempt.request_fingerprint,
            "reservation_id": attempt.reservation_id,
            "status": attempt.status.value,
            "lines": codec.dump_reservation_lines(attempt.lines),
            "reason": attempt.reason,
            "created_at": codec.to_epoch(attempt.created_at),
        }
        self._insert(t.release_attempts, values, f"idempotency key {attempt.idempotency_key}")

    # -- picks -----------------------------------------------------------------------------

    def get_pick_task(self, pick_id: str) -> PickTask | None:
        table = t.pick_tasks
        row = self._conn.execute(select(table).where(table.c.pick_id == pick_id)).first()
        return _pick_task(row) if row else None

    def save_pick_task(self, task: PickTask) -> None:
        table = t.pick_tasks
        values = {
            "reservation_id": task.reservation_id,
            "order_id": task.order_id,
            "location_id": task.location_id,
            "status": task.status.value,
            "lines": codec.dump_reservation_lines(task.lines),
            "created_at": codec.to_epoch(task.created_at),
            "confirmed_lines": codec.dump_confirmations(task.confirmed_lines),
            "completed_at": codec.to_epoch(task.completed_at),
        }
        done = self._conn.execute(
            update(table).where(table.c.pick_id == task.pick_id).values(values)
        )
        if done.rowcount == 0:
            self._insert(table, {"pick_id": task.pick_id, **values}, f"pick {task.pick_id}")

    def pick_tasks(
        self,
        reservation_id: str | None = None,
        location_id: str | None = None,
        status: PickStatus | None = None,
    ) -> list[PickTask]:
        table = t.pick_tasks
        query = select(table).order_by(table.c.seq)
        if reservation_id is not None:
            query = query.where(table.c.reservation_id == reservation_id)
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        return [_pick_task(row) for row in self._conn.execute(query)]

    def pick_tasks_page(
        self, *, location_id: str | None, status: PickStatus | None, size: int, token: str
    ) -> Page:
        """Pick tasks oldest first (by `seq`, creation order), one page past `token`."""
        table = t.pick_tasks
        query = select(table)
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        rows = self._conn.execute(keyset(query, table.c.seq, token, size, key_type=int)).all()
        page, next_token = next_page(rows, size, key=lambda row: int(row.seq))
        return [_pick_task(row) for row in page], next_token

    # -- adjustments, receipts and the ledger ----------------------------------------------

    def get_adjustment_by_key(self, idempotency_key: str) -> Adjustment | None:
        table = t.adjustments
        row = self._conn.execute(
            select(table).where(table.c.idempotency_key == idempotency_key)
        ).first()
        if row is None:
            return None
        return Adjustment(
            adjustment_id=row.adjustment_id,
            sku=row.sku,
            location_id=row.location_id,
            quantity_delta=int(row.quantity_delta),
            reason=AdjustmentReason(row.reason),
            note=row.note,
            created_at=codec.required_time(row.created_at),
            idempotency_key=row.idempotency_key or "",
            request_fingerprint=row.request_fingerprint,
            pick_id=row.pick_id,
        )

    def add_adjustment(self, adjustment: Adjustment) -> None:
        values = {
            "adjustment_id": adjustment.adjustment_id,
            "sku": adjustment.sku,
            "location_id": adjustment.location_id,
            "quantity_delta": adjustment.quantity_delta,
            "reason": adjustment.reason.value,
            "note": adjustment.note,
            "created_at": codec.to_epoch(adjustment.created_at),
            "idempotency_key": adjustment.idempotency_key or None,
            "request_fingerprint": adjustment.request_fingerprint,
            "pick_id": adjustment.pick_id,
        }
        self._insert(t.adjustments, values, f"adjustment {adjustment.adjustment_id}")

    def get_receipt_by_key(self, idempotency_key: str) -> Receipt | None:
        table = t.receipts
        row = self._conn.execute(
            select(table).where(table.c.idempotency_key == idempotency_key)
        ).first()
        if row is None:
            return None
        return Receipt(
            receipt_id=row.receipt_id,
            location_id=row.location_id,
            source=ReceiptSource(row.source),
            source_reference=row.source_reference,
            lines=codec.load_receipt_lines(row.lines),
            created_at=codec.required_time(row.created_at),
            idempotency_key=row.idempotency_key or "",
            request_fingerprint=row.request_fingerprint,
        )

    def add_receipt(self, receipt: Receipt) -> None:
        values = {
            "receipt_id": receipt.receipt_id,
            "location_id": receipt.location_id,
            "source": receipt.source.value,
            "source_reference": receipt.source_reference,
            "lines": codec.dump_receipt_lines(receipt.lines),
            "created_at": codec.to_epoch(receipt.created_at),
            "idempotency_key": receipt.idempotency_key or None,
            "request_fingerprint": receipt.request_fingerprint,
        }
        self._insert(t.receipts, values, f"receipt {receipt.receipt_id}")

    def add_movement(self, movement: Movement) -> None:
        # Plain insert: the ledger has no unique key to race on.
        self._conn.execute(
            insert(t.movements).values(
                sku=movement.sku,
                location_id=movement.location_id,
                quantity_delta=movement.quantity_delta,
                kind=movement.kind.value,
                reference_id=movement.reference_id,
                occurred_at=codec.to_epoch(movement.occurred_at),
                sellable=movement.sellable,
            )
        )

    def movements(self, sku: str | None = None, location_id: str | None = None) -> list[Movement]:
        table = t.movements
        query = select(table).order_by(table.c.seq)
        if sku is not None:
            query = query.where(table.c.sku == sku)
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        return [
            Movement(
                row.sku,
                row.location_id,
                int(row.quantity_delta),
                MovementKind(row.kind),
                row.reference_id,
                codec.required_time(row.occurred_at),
                bool(row.sellable),
            )
            for row in self._conn.execute(query)
        ]


def _position(row: Any) -> Position:
    return Position(
        row.sku,
        row.location_id,
        int(row.on_hand),
        int(row.reserved),
        int(row.version),
        codec.from_epoch(row.updated_at),
        int(row.non_sellable),
    )


def _reservation(row: Any) -> Reservation:
    return Reservation(
        reservation_id=row.reservation_id,
        order_id=row.order_id,
        location_id=row.location_id,
        status=ReservationStatus(row.status),
        lines=codec.load_reservation_lines(row.lines),
        created_at=codec.required_time(row.created_at),
        idempotency_key=row.idempotency_key,
        release_reason=row.release_reason,
        updated_at=codec.from_epoch(row.updated_at),
    )


def _pick_task(row: Any) -> PickTask:
    return PickTask(
        pick_id=row.pick_id,
        reservation_id=row.reservation_id,
        order_id=row.order_id,
        location_id=row.location_id,
        status=PickStatus(row.status),
        lines=codec.load_reservation_lines(row.lines),
        created_at=codec.required_time(row.created_at),
        confirmed_lines=codec.load_confirmations(row.confirmed_lines),
        completed_at=codec.from_epoch(row.completed_at),
    )
