"""`SqlInventory`: the domain's InventoryRepository over SQLAlchemy Core, inside one unit of work.

It also serves the List RPCs' pages, keyset-paged in SQL (services.kit.paging): one indexed
range read per page however deep the caller pages. Its statements are built once, in
`statements`; batched reads (`get_items`, `get_positions`, `get_item_stock`, `positions_of_skus`,
`positions_at_active_locations`) are one IN query (prepared per padded number of SKUs;
`_rows_of_skus`). Reads an operation always makes together are one statement (why: each costs
a round trip, and a few µs of CPU on SQLite): a reservation's location with its items and their
positions (`get_location_and_item_stock`), a confirmation's pick task with them
(`get_pick_for_confirmation`, after the lock), availability's positions with the items
(`active_positions_and_items`), positions with their location's active flag, and a pick's
reservation locked by the pick's id.

It never commits: `Database.run` owns the transaction. Races are settled by the database:
- `save_position` compare-and-sets on `version` (UPDATE ... WHERE version = expected). On
  PostgreSQL the second of two racing updates waits for the first's row lock, then re-checks the
  WHERE and matches nothing; on SQLite BEGIN IMMEDIATE serialises writers outright. Either way
  the loser gets kit `Conflict` and the caller retries the whole unit of work. `save_positions`
  runs the updates of one operation as one executemany and checks their summed rowcount;
- a first INSERT of a position, of an idempotency key or of any other row with a unique key is
  INSERT ... ON CONFLICT DO NOTHING: one that loses to a concurrent insert of the same key (on
  PostgreSQL it waits for the winner to commit) inserts nothing, and that is reported as
  `Conflict` too, so the retry then sees the winner's row. Losing raises no database error, so
  no savepoint is needed and a PostgreSQL transaction stays usable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, tuple_

from services.inventory.adapters.store import codec
from services.inventory.adapters.store import statements as sql
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
from services.inventory.domain.repository import ItemStock
from services.kit.errors import Conflict
from services.kit.paging import decode_token, keyset, next_page
from services.kit.raw_results import RawRow
from services.kit.statements import Prepared

# One page of a list and the token of the next one ("" on the last page).
Page = tuple[list[Any], str]


class _ItemRow(NamedTuple):
    """An items row (its columns in table order): the leading columns of
    `statements.items_with_positions`'s rows."""

    sku: str
    description: str
    unit_of_measure: int
    dimensions: str | None
    weight: str | None
    hazmat: bool
    lot_controlled: bool
    active: bool
    unit_price: str | None


class _LocationRow(NamedTuple):
    """A locations row (its columns in table order): the leading columns of
    `statements.location_with_item_stock`'s rows."""

    location_id: str
    name: str
    address: str | None
    active: bool


# The position key in a page token: SKU and location joined by a character neither may contain.
_KEY_SEPARATOR = "\x00"


class SqlInventory:
    """InventoryRepository on one connection (one transaction); see the module docstring."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _insert(self, statement: Prepared, values: dict[str, Any], what: str) -> None:
        # ON CONFLICT DO NOTHING: a row already there (a concurrent first insert that won)
        # leaves rowcount 0 and no error, so the transaction stays usable for the Conflict.
        if statement.run(self._conn, values).rowcount == 0:
            raise Conflict(f"{what} was written concurrently")

    def _one(self, statement: Prepared, params: dict[str, Any]) -> RawRow | None:
        return statement.run(self._conn, params).first()

    def _rows_of_skus(
        self,
        skus: Collection[str],
        prepared_of_size: Callable[[int], Prepared],
        expanding: Select[Any],
        **params: str,
    ) -> Iterable[Any]:
        """One IN read over `skus` (at least one): the prepared statement of their padded
        count, or the expanding one for a batch too large to prepare (see `statements`)."""
        listed = list(skus)
        if len(listed) > sql.MAX_PREPARED_IN:
            return self._conn.execute(expanding, {**params, "skus": listed})
        statement = prepared_of_size(sql.in_size(len(listed)))
        return statement.run(self._conn, {**params, **sql.sku_binds(listed)})

    # -- item master and locations ---------------------------------------------------------

    def get_item(self, sku: str) -> Item | None:
        row = self._one(sql.ITEM, {"sku": sku})
        return codec.item_from(row) if row else None

    def get_items(self, skus: Collection[str]) -> dict[str, Item]:
        if not skus:
            return {}
        rows = self._rows_of_skus(skus, sql.items_in, sql.ITEMS_IN_ANY)
        return {row.sku: codec.item_from(row) for row in rows}

    def save_item(self, item: Item) -> None:
        values = codec.item_row(item)
        done = sql.UPDATE_ITEM.run(self._conn, {**values, "match_sku": item.sku})
        if done.rowcount == 0:
            self._insert(sql.NEW_ITEM, values, f"item {item.sku}")

    def items(self) -> list[Item]:
        return [codec.item_from(row) for row in sql.ITEMS.run(self._conn)]

    def items_page(self, *, include_inactive: bool, size: int, token: str) -> Page:
        """Items in SKU order (active only unless `include_inactive`), one page past `token`."""
        query = sql.ITEMS_FOR_PAGE if include_inactive else sql.ACTIVE_ITEMS_FOR_PAGE
        rows = self._conn.execute(keyset(query, t.items.c.sku, token, size, key_type=str)).all()
        page, next_token = next_page(rows, size, key=lambda row: row.sku)
        return [codec.item_from(row) for row in page], next_token

    def get_location(self, location_id: str) -> Location | None:
        row = self._one(sql.LOCATION, {"location_id": location_id})
        return codec.location_from(row) if row else None

    def save_location(self, location: Location) -> None:
        values = codec.location_row(location)
        done = sql.UPDATE_LOCATION.run(
            self._conn, {**values, "match_location_id": location.location_id}
        )
        if done.rowcount == 0:
            self._insert(sql.NEW_LOCATION, values, f"location {location.location_id}")

    def locations(self) -> list[Location]:
        return [codec.location_from(row) for row in sql.LOCATIONS.run(self._conn)]

    def locations_page(self, *, size: int, token: str) -> Page:
        """Locations in id order, one page past `token`."""
        query = keyset(sql.LOCATIONS_FOR_PAGE, t.locations.c.location_id, token, size, key_type=str)
        rows = self._conn.execute(query).all()
        page, next_token = next_page(rows, size, key=lambda row: row.location_id)
        return [codec.location_from(row) for row in page], next_token

    # -- positions -------------------------------------------------------------------------

    def get_position(self, sku: str, location_id: str) -> Position:
        row = self._one(sql.POSITION, {"sku": sku, "location_id": location_id})
        return _position(row) if row else Position(sku, location_id)

    def get_positions(self, skus: Collection[str], location_id: str) -> dict[str, Position]:
        if not skus:
            return {}
        rows = self._rows_of_skus(
            skus, sql.positions_at, sql.POSITIONS_AT_ANY, location_id=location_id
        )
        found = {row.sku: _position(row) for row in rows}
        return {sku: found[sku] if sku in found else Position(sku, location_id) for sku in skus}

    def get_item_stock(self, skus: Collection[str], location_id: str) -> dict[str, ItemStock]:
        if not skus:
            return {}
        rows = self._rows_of_skus(
            skus, sql.item_stock_at, sql.ITEM_STOCK_AT_ANY, location_id=location_id
        )
        return {
            row.sku: ItemStock(
                row.sku,
                bool(row.lot_controlled),
                _position(row) if row.location_id is not None else Position(row.sku, location_id),
            )
            for row in rows
        }

    def get_location_and_item_stock(
        self, location_id: str, skus: Collection[str]
    ) -> tuple[Location | None, dict[str, ItemStock]]:
        listed = list(skus)
        if not listed or len(listed) > sql.MAX_PREPARED_IN:
            location = self.get_location(location_id)
            return location, self.get_item_stock(listed, location_id) if location else {}
        statement = sql.location_with_item_stock(sql.in_size(len(listed)))
        rows = statement.run(self._conn, {"location_id": location_id, **sql.sku_binds(listed)})
        first = rows.first()
        if first is None:
            return None, {}
        # Decoded from its own columns, so the decode cache keys on the location row alone.
        location = codec.location_from(
            _LocationRow._make(tuple(first)[: len(_LocationRow._fields)])
        )
        return location, _item_stock(rows, location_id)

    def save_position(self, position: Position) -> None:
        if position.version == 1:
            self._insert(sql.NEW_POSITION, _new_position_values(position), _where(position))
            return
        done = sql.UPDATE_POSITION.run(self._conn, _position_update(position))
        if done.rowcount != 1:
            raise Conflict(f"{_where(position)} changed concurrently")

    def save_positions(self, positions: Sequence[Position]) -> None:
        # Updates of stocked positions (the usual case) are one executemany: each matches one
        # row (the key and the version it was computed from) or none, so their rowcounts add
        # up to the number of positions only if every compare-and-set held.
        if len(positions) < 2 or any(position.version == 1 for position in positions):
            for position in positions:
                self.save_position(position)
            return
        done = sql.UPDATE_POSITION.run_many(self._conn, map(_position_update, positions))
        if done.rowcount != len(positions):
            where = ", ".join(_where(position) for position in positions)
            raise Conflict(f"one of {where} changed concurrently")

    def positions(self, sku: str | None = None, location_id: str | None = None) -> list[Position]:
        query = sql.positions(sku is not None, location_id is not None)
        rows = query.run(self._conn, _given(sku=sku, location_id=location_id))
        return [_position(row) for row in rows]

    def positions_of_skus(self, skus: Collection[str]) -> list[Position]:
        if not skus:
            return []
        rows = self._rows_of_skus(skus, sql.positions_of_skus, sql.POSITIONS_OF_SKUS_ANY)
        return [_position(row) for row in rows]

    def positions_at_active_locations(self, skus: Collection[str]) -> list[Position]:
        if not skus:
            return []
        rows = self._rows_of_skus(
            skus, sql.positions_at_active_locations, sql.POSITIONS_AT_ACTIVE_LOCATIONS_ANY
        )
        return [_position(row) for row in rows]

    def active_positions_and_items(
        self, skus: Collection[str]
    ) -> tuple[list[Position], dict[str, Item]]:
        listed = list(skus)
        if not listed or len(listed) > sql.MAX_PREPARED_IN:
            return self.positions_at_active_locations(listed), self.get_items(listed)
        statement = sql.items_with_positions(sql.in_size(len(listed)))
        positions: list[Position] = []
        items: dict[str, Item] = {}
        for row in statement.run(self._conn, sql.sku_binds(listed)):
            if row.sku not in items:
                # Decoded from its own columns, so the decode cache keys on the item row alone.
                items[row.sku] = codec.item_from(
                    _ItemRow._make(tuple(row)[: len(_ItemRow._fields)])
                )
            if row.location_active:  # NULL without a position (or, never, without a location)
                positions.append(_position(row))
        # A position of a SKU missing from the item master (none should exist) is still stock;
        # appended, as each SKU's positions stay in location order (all the port promises).
        unknown = [sku for sku in listed if sku not in items]
        if unknown:
            positions += self.positions_at_active_locations(unknown)
        return positions, items

    def positions_page(
        self, *, sku: str | None, location_id: str | None, size: int, token: str
    ) -> Page:
        """Positions by SKU then location, one page past `token`, on the primary key.

        The kit's `keyset` pages on one column; a position's key is the pair, so the range is
        a row-value comparison here, with the kit's token codec and page split.
        """
        table = t.positions
        query = sql.POSITIONS_FOR_PAGE
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
        # Locked (PostgreSQL; SQLite has one writer): a release and a pick confirmation of the
        # same reservation serialize on this row, so the second sees what the first decided.
        row = self._one(sql.RESERVATION_FOR_UPDATE, {"reservation_id": reservation_id})
        return _reservation(row) if row else None

    def get_pick_and_reservation(self, pick_id: str) -> tuple[PickTask | None, Reservation | None]:
        # Lock first, then read the task: see statements.RESERVATION_OF_PICK_FOR_UPDATE.
        locked = self._one(sql.RESERVATION_OF_PICK_FOR_UPDATE, {"pick_id": pick_id})
        return self.get_pick_task(pick_id), _reservation(locked) if locked else None

    def get_pick_for_confirmation(
        self, pick_id: str, skus: Collection[str]
    ) -> tuple[PickTask | None, Reservation | None, dict[str, ItemStock]]:
        # As get_pick_and_reservation: the lock first, then the task, here read with the items
        # and positions the confirmation needs (two statements instead of three).
        listed = list(skus)
        if not listed or len(listed) > sql.MAX_PREPARED_IN:
            task, reservation = self.get_pick_and_reservation(pick_id)
            stock = self.get_item_stock(listed, task.location_id) if task else {}
            return task, reservation, stock
        locked = self._one(sql.RESERVATION_OF_PICK_FOR_UPDATE, {"pick_id": pick_id})
        statement = sql.pick_task_with_item_stock(sql.in_size(len(listed)))
        rows = statement.run(self._conn, {"pick_id": pick_id, **sql.sku_binds(listed)})
        reservation = _reservation(locked) if locked else None
        first = rows.first()
        if first is None:
            return None, reservation, {}
        task = _pick_task(first)
        return task, reservation, _item_stock(rows, task.location_id)

    def add_reservation(self, reservation: Reservation) -> None:
        values = {"reservation_id": reservation.reservation_id, **_reservation_values(reservation)}
        self._insert(sql.NEW_RESERVATION, values, f"reservation {reservation.reservation_id}")

    def save_reservation(self, reservation: Reservation) -> None:
        values = _reservation_values(reservation)
        done = sql.UPDATE_RESERVATION.run(
            self._conn, {**values, "match_reservation_id": reservation.reservation_id}
        )
        if done.rowcount == 0:
            self.add_reservation(reservation)

    def reservations(
        self, order_id: str | None = None, status: ReservationStatus | None = None
    ) -> list[Reservation]:
        query = sql.reservations(order_id is not None, status is not None)
        params = _given(order_id=order_id, status=status.value if status is not None else None)
        return [_reservation(row) for row in query.run(self._conn, params)]

    def reservations_page(
        self,
        *,
        sku: str | None,
        location_id: str | None,
        order_id: str | None,
        status: ReservationStatus | None,
        size: int,
        token: str,
    ) -> Page:
        """Reservations oldest first (by `seq`), one page past `token`, in one statement."""
        table = t.reservations
        query = sql.RESERVATIONS_FOR_PAGE
        if sku is not None:
            query = query.where(sql.holding_sku(sku))
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        if order_id is not None:
            query = query.where(table.c.order_id == order_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        rows = self._conn.execute(keyset(query, table.c.seq, token, size, key_type=int)).all()
        page, next_token = next_page(rows, size, key=lambda row: int(row.seq))
        found = [_reservation(row) for row in page]
        if sku is not None:
            # SQLite's LIKE ignores ASCII case: keep the exact SKU's (the token stays the page's
            # last row read, so a page may hold fewer than `size` and still have a next).
            found = [r for r in found if any(line.sku == sku for line in r.lines)]
        return found, next_token

    def get_reserve_attempt(self, idempotency_key: str) -> ReserveAttempt | None:
        row = self._one(sql.RESERVE_ATTEMPT, {"idempotency_key": idempotency_key})
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
        self._insert(sql.NEW_RESERVE_ATTEMPT, values, f"idempotency key {attempt.idempotency_key}")

    def get_release_attempt(self, idempotency_key: str) -> ReleaseAttempt | None:
        row = self._one(sql.RELEASE_ATTEMPT, {"idempotency_key": idempotency_key})
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
        self._insert(sql.NEW_RELEASE_ATTEMPT, values, f"idempotency key {attempt.idempotency_key}")

    # -- picks -----------------------------------------------------------------------------

    def get_pick_task(self, pick_id: str) -> PickTask | None:
        row = self._one(sql.PICK_TASK, {"pick_id": pick_id})
        return _pick_task(row) if row else None

    def add_pick_task(self, task: PickTask) -> None:
        values = {"pick_id": task.pick_id, **_pick_task_values(task)}
        self._insert(sql.NEW_PICK_TASK, values, f"pick {task.pick_id}")

    def save_pick_task(self, task: PickTask) -> None:
        values = _pick_task_values(task)
        done = sql.UPDATE_PICK_TASK.run(self._conn, {**values, "match_pick_id": task.pick_id})
        if done.rowcount == 0:
            self.add_pick_task(task)

    def pick_tasks(
        self,
        reservation_id: str | None = None,
        location_id: str | None = None,
        status: PickStatus | None = None,
    ) -> list[PickTask]:
        query = sql.pick_tasks(
            reservation_id is not None, location_id is not None, status is not None
        )
        params = _given(
            reservation_id=reservation_id,
            location_id=location_id,
            status=status.value if status is not None else None,
        )
        return [_pick_task(row) for row in query.run(self._conn, params)]

    def pick_tasks_page(
        self, *, location_id: str | None, status: PickStatus | None, size: int, token: str
    ) -> Page:
        """Pick tasks oldest first (by `seq`, creation order), one page past `token`."""
        table = t.pick_tasks
        query = sql.PICK_TASKS_FOR_PAGE
        if location_id is not None:
            query = query.where(table.c.location_id == location_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        rows = self._conn.execute(keyset(query, table.c.seq, token, size, key_type=int)).all()
        page, next_token = next_page(rows, size, key=lambda row: int(row.seq))
        return [_pick_task(row) for row in page], next_token

    # -- adjustments, receipts and the ledger ----------------------------------------------

    def get_adjustment_by_key(self, idempotency_key: str) -> Adjustment | None:
        row = self._one(sql.ADJUSTMENT_BY_KEY, {"idempotency_key": idempotency_key})
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
        self._insert(sql.NEW_ADJUSTMENT, values, f"adjustment {adjustment.adjustment_id}")

    def get_receipt_by_key(self, idempotency_key: str) -> Receipt | None:
        row = self._one(sql.RECEIPT_BY_KEY, {"idempotency_key": idempotency_key})
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
        self._insert(sql.NEW_RECEIPT, values, f"receipt {receipt.receipt_id}")

    def add_movements(self, movements: Sequence[Movement]) -> None:
        # One executemany, in order: `seq` keeps the ledger order the domain wrote them in.
        if not movements:
            return
        sql.INSERT_MOVEMENT.run_many(
            self._conn,
            [
                {
                    "sku": movement.sku,
                    "location_id": movement.location_id,
                    "quantity_delta": movement.quantity_delta,
                    "kind": movement.kind.value,
                    "reference_id": movement.reference_id,
                    "occurred_at": codec.to_epoch(movement.occurred_at),
                    "sellable": movement.sellable,
                }
                for movement in movements
            ],
        )

    def movements(self, sku: str | None = None, location_id: str | None = None) -> list[Movement]:
        query = sql.movements(sku is not None, location_id is not None)
        rows = query.run(self._conn, _given(sku=sku, location_id=location_id))
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
            for row in rows
        ]


def _given(**filters: Any) -> dict[str, Any]:
    """The filters a caller gave (None = not filtered), as the bind values of their statement."""
    return {name: value for name, value in filters.items() if value is not None}


def _reservation_values(reservation: Reservation) -> dict[str, Any]:
    return {
        "order_id": reservation.order_id,
        "location_id": reservation.location_id,
        "status": reservation.status.value,
        "lines": codec.dump_reservation_lines(reservation.lines),
        "created_at": codec.to_epoch(reservation.created_at),
        "idempotency_key": reservation.idempotency_key,
        "release_reason": reservation.release_reason,
        "updated_at": codec.to_epoch(reservation.updated_at),
    }


def _pick_task_values(task: PickTask) -> dict[str, Any]:
    return {
        "reservation_id": task.reservation_id,
        "order_id": task.order_id,
        "location_id": task.location_id,
        "status": task.status.value,
        "lines": codec.dump_reservation_lines(task.lines),
        "created_at": codec.to_epoch(task.created_at),
        "confirmed_lines": codec.dump_confirmations(task.confirmed_lines),
        "completed_at": codec.to_epoch(task.completed_at),
    }


def _where(position: Position) -> str:
    return f"position {position.sku}@{position.location_id}"


def _new_position_values(position: Position) -> dict[str, Any]:
    return {
        "sku": position.sku,
        "location_id": position.location_id,
        "on_hand": position.on_hand,
        "reserved": position.reserved,
        "version": position.version,
        "updated_at": codec.to_epoch(position.updated_at),
        "non_sellable": position.non_sellable,
    }


def _position_update(position: Position) -> dict[str, Any]:
    """UPDATE_POSITION's binds: the new values where the stored version is the one before."""
    return {
        "on_hand": position.on_hand,
        "reserved": position.reserved,
        "version": position.version,
        "updated_at": codec.to_epoch(position.updated_at),
        "non_sellable": position.non_sellable,
        "match_sku": position.sku,
        "match_location_id": position.location_id,
        "match_version": position.version - 1,
    }


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


def _item_stock(rows: Iterable[Any], location_id: str) -> dict[str, ItemStock]:
    """The item stock in rows of `statements._with_item_stock` (a NULL item_sku is no item)."""
    return {
        row.item_sku: ItemStock(
            row.item_sku,
            bool(row.lot_controlled),
            Position(
                row.item_sku,
                location_id,
                int(row.on_hand),
                int(row.reserved),
                int(row.version),
                codec.from_epoch(row.position_updated_at),
                int(row.non_sellable),
            )
            if row.position_location_id is not None
            else Position(row.item_sku, location_id),
        )
        for row in rows
        if row.item_sku is not None
    }


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
