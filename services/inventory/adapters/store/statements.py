"""The inventory store's SQL statements, each built once (why: services/kit/statements.py).

- Each is `prepared` (run on the raw DBAPI cursor in the unit of work's transaction, skipping
  SQLAlchemy's per-execute work; services/kit/statements.py) except the `*_FOR_PAGE` bases the
  pages extend per call.
- The IN queries of the batched and combined reads (`items_in`, `positions_at`,
  `positions_of_skus`, `item_stock_at`, `positions_at_active_locations`, `items_with_positions`,
  `location_with_item_stock`, `pick_task_with_item_stock`) are prepared too, one statement
  per number of SKUs `:sku0 .. :skuN-1` (an expanding IN would be rendered per call). Callers
  pad the SKUs to `in_size(n)` (a power of two) by repeating one, which selects the same rows,
  so a handful of statements serve every batch; a batch larger than `MAX_PREPARED_IN` runs the
  expanding `*_ANY` statement through `conn.execute` (the combined reads fall back to their
  separate reads).
- SELECTs bind their filters by name; optional filters get one statement per combination of
  filters given, built on first use (`functools.cache`).
- UPDATEs are the kit's `update_where` (SET from the parameters, WHERE on `match_*` binds).
- `NEW_*` are the inserts that may lose a race on a unique key: the kit's `insert_new` (ON
  CONFLICT DO NOTHING per dialect); the repository turns rowcount 0 into `Conflict`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, insert, select

from services.inventory.adapters.store import tables as t
from services.kit.statements import Prepared, insert_new, prepared, update_where

# -- IN lists of SKUs ----------------------------------------------------------------------------

# The largest padded IN list that gets a prepared statement (sizes 1, 2, 4, ... up to it).
MAX_PREPARED_IN = 256
_SKU_BIND_NAMES = tuple(f"sku{index}" for index in range(MAX_PREPARED_IN))


def in_size(count: int) -> int:
    """The padded length of an IN list of `count` SKUs: the next power of two (at least 1)."""
    return 1 << max(0, count - 1).bit_length()


def sku_binds(skus: Sequence[str]) -> dict[str, str]:
    """`skus` (one at least) padded to `in_size` by repeating the first, as :sku<i> binds."""
    padded = [*skus, *[skus[0]] * (in_size(len(skus)) - len(skus))]
    return dict(zip(_SKU_BIND_NAMES, padded, strict=False))


def _sku_in(column: ColumnElement[str], size: int) -> ColumnElement[bool]:
    return column.in_([bindparam(name) for name in _SKU_BIND_NAMES[:size]])


@functools.cache
def items_in(size: int) -> Prepared:
    """The items whose SKU is one of :sku0 .. :sku<size-1>."""
    return prepared(select(t.items).where(_sku_in(t.items.c.sku, size)))


@functools.cache
def positions_at(size: int) -> Prepared:
    """The positions at :location_id of SKUs :sku0 .. :sku<size-1>."""
    return prepared(
        select(t.positions).where(
            t.positions.c.location_id == bindparam("location_id"),
            _sku_in(t.positions.c.sku, size),
        )
    )


@functools.cache
def positions_of_skus(size: int) -> Prepared:
    """The positions of SKUs :sku0 .. :sku<size-1> at every location, by SKU then location."""
    return prepared(
        select(t.positions)
        .where(_sku_in(t.positions.c.sku, size))
        .order_by(t.positions.c.sku, t.positions.c.location_id)
    )


@functools.cache
def item_stock_at(size: int) -> Prepared:
    """The items among :sku0 .. :sku<size-1>, with their position at :location_id if any."""
    return prepared(_item_stock_at().where(_sku_in(t.items.c.sku, size)))


@functools.cache
def positions_at_active_locations(size: int) -> Prepared:
    """The positions of SKUs :sku0 .. :sku<size-1> at active locations, by SKU then location."""
    return prepared(_positions_at_active_locations().where(_sku_in(t.positions.c.sku, size)))


def _item_stock_at() -> Select[Any]:
    # A LEFT JOIN: a known SKU never stocked at the location comes back with NULL position
    # columns (the repository makes it a zero position).
    items, positions = t.items, t.positions
    return select(
        items.c.sku,
        items.c.lot_controlled,
        positions.c.location_id,
        positions.c.on_hand,
        positions.c.reserved,
        positions.c.version,
        positions.c.updated_at,
        positions.c.non_sellable,
    ).select_from(
        items.outerjoin(
            positions,
            and_(
                positions.c.sku == items.c.sku,
                positions.c.location_id == bindparam("location_id"),
            ),
        )
    )


@functools.cache
def location_with_item_stock(size: int) -> Prepared:
    """Location :location_id with the items among :sku0 .. :sku<size-1> and their position
    there: one row per known SKU, or one with NULL item columns if none is known; no row for an
    unknown location. A reservation's reads in one statement (`get_location_and_item_stock`)."""
    return prepared(
        _with_item_stock(t.locations, t.locations.c.location_id, size).where(
            t.locations.c.location_id == bindparam("location_id")
        )
    )


@functools.cache
def pick_task_with_item_stock(size: int) -> Prepared:
    """Pick task :pick_id with the items among :sku0 .. :sku<size-1> and their position at the
    task's location, rows shaped as `location_with_item_stock`'s. A confirmation's read after
    it locked the reservation (`get_pick_for_confirmation`)."""
    return prepared(
        _with_item_stock(t.pick_tasks, t.pick_tasks.c.location_id, size).where(
            t.pick_tasks.c.pick_id == bindparam("pick_id")
        )
    )


@functools.cache
def items_with_positions(size: int) -> Prepared:
    """The items among :sku0 .. :sku<size-1>, each with its positions and their location's
    `location_active` flag (one row per position; one with NULL position columns if none), by
    SKU then location. Plain LEFT JOINs, each on an index: SQLite materialises a nested join
    (`items LEFT JOIN (positions JOIN locations)`) by scanning every position, so the caller
    leaves out the positions of inactive locations itself."""
    items, positions, locations = t.items, t.positions, t.locations
    return prepared(
        select(
            items,
            positions.c.location_id,
            positions.c.on_hand,
            positions.c.reserved,
            positions.c.version,
            positions.c.updated_at,
            positions.c.non_sellable,
            locations.c.active.label("location_active"),
        )
        .select_from(
            items.outerjoin(positions, positions.c.sku == items.c.sku).outerjoin(
                locations, locations.c.location_id == positions.c.location_id
            )
        )
        .where(_sku_in(items.c.sku, size))
        .order_by(items.c.sku, positions.c.location_id)
    )


def _with_item_stock(base: Table, location_id: ColumnElement[str], size: int) -> Select[Any]:
    # `base`'s columns, then the item master columns of `_item_stock_at` (item_sku, whose NULL
    # means no known SKU) and the position at `location_id` (position_location_id NULL: never
    # stocked there). The base row repeats per SKU: one row each costs less than a statement.
    items, positions = t.items, t.positions
    return select(
        base,
        items.c.sku.label("item_sku"),
        items.c.lot_controlled,
        positions.c.location_id.label("position_location_id"),
        positions.c.on_hand,
        positions.c.reserved,
        positions.c.version,
        positions.c.updated_at.label("position_updated_at"),
        positions.c.non_sellable,
    ).select_from(
        base.outerjoin(items, _sku_in(items.c.sku, size)).outerjoin(
            positions,
            and_(positions.c.sku == items.c.sku, positions.c.location_id == location_id),
        )
    )


def _positions_at_active_locations() -> Select[Any]:
    positions, locations = t.positions, t.locations
    return (
        select(positions)
        .join(locations, locations.c.location_id == positions.c.location_id)
        .where(locations.c.active.is_(True))
        .order_by(positions.c.sku, positions.c.location_id)
    )


# -- items and locations -----------------------------------------------------------------------

ITEM = prepared(select(t.items).where(t.items.c.sku == bindparam("sku")))
ITEMS_IN_ANY = select(t.items).where(t.items.c.sku.in_(bindparam("skus", expanding=True)))
ITEMS = prepared(select(t.items).order_by(t.items.c.sku))
ITEMS_FOR_PAGE = select(t.items)
ACTIVE_ITEMS_FOR_PAGE = select(t.items).where(t.items.c.active.is_(True))
UPDATE_ITEM = prepared(update_where(t.items, "sku"))
NEW_ITEM = prepared(insert_new(t.items))

LOCATION = prepared(
    select(t.locations).where(t.locations.c.location_id == bindparam("location_id"))
)
LOCATIONS = prepared(select(t.locations).order_by(t.locations.c.location_id))
LOCATIONS_FOR_PAGE = select(t.locations)
UPDATE_LOCATION = prepared(update_where(t.locations, "location_id"))
NEW_LOCATION = prepared(insert_new(t.locations))

# -- positions ---------------------------------------------------------------------------------

POSITION = prepared(
    select(t.positions).where(
        t.positions.c.sku == bindparam("sku"),
        t.positions.c.location_id == bindparam("location_id"),
    )
)
POSITIONS_AT_ANY = select(t.positions).where(
    t.positions.c.location_id == bindparam("location_id"),
    t.positions.c.sku.in_(bindparam("skus", expanding=True)),
)
POSITIONS_OF_SKUS_ANY = (
    select(t.positions)
    .where(t.positions.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(t.positions.c.sku, t.positions.c.location_id)
)
ITEM_STOCK_AT_ANY = _item_stock_at().where(t.items.c.sku.in_(bindparam("skus", expanding=True)))
POSITIONS_AT_ACTIVE_LOCATIONS_ANY = _positions_at_active_locations().where(
    t.positions.c.sku.in_(bindparam("skus", expanding=True))
)
POSITIONS_FOR_PAGE = select(t.positions)
# The compare-and-set: matches only the version the new one was computed from.
UPDATE_POSITION = prepared(update_where(t.positions, "sku", "location_id", "version"))
NEW_POSITION = prepared(insert_new(t.positions))


@functools.cache
def positions(by_sku: bool, by_location: bool) -> Prepared:
    """Positions in SKU then location order, filtered by :sku and/or :location_id."""
    query = select(t.positions).order_by(t.positions.c.sku, t.positions.c.location_id)
    if by_sku:
        query = query.where(t.positions.c.sku == bindparam("sku"))
    if by_location:
        query = query.where(t.positions.c.location_id == bindparam("location_id"))
    return prepared(query)


# -- reservations and idempotency keys ---------------------------------------------------------

# Locked (PostgreSQL; SQLite has one writer): see SqlInventory.get_reservation.
RESERVATION_FOR_UPDATE = prepared(
    select(t.reservations)
    .where(t.reservations.c.reservation_id == bindparam("reservation_id"))
    .with_for_update()
)
# The reservation of a pick, locked as RESERVATION_FOR_UPDATE, found by the pick's id (which
# never changes) in the same statement. The pick task itself is read by the next statement: on
# PostgreSQL a row read in the statement that waited for a lock may predate what the lock's
# holder committed (a release amending or withdrawing the task).
RESERVATION_OF_PICK_FOR_UPDATE = prepared(
    select(t.reservations)
    .where(
        t.reservations.c.reservation_id
        == select(t.pick_tasks.c.reservation_id)
        .where(t.pick_tasks.c.pick_id == bindparam("pick_id"))
        .scalar_subquery()
    )
    .with_for_update()
)
UPDATE_RESERVATION = prepared(update_where(t.reservations, "reservation_id"))
NEW_RESERVATION = prepared(insert_new(t.reservations))


@functools.cache
def reservations(by_order: bool, by_status: bool) -> Prepared:
    """Reservations in creation order, filtered by :order_id and/or :status."""
    query = select(t.reservations).order_by(t.reservations.c.seq)
    if by_order:
        query = query.where(t.reservations.c.order_id == bindparam("order_id"))
    if by_status:
        query = query.where(t.reservations.c.status == bindparam("status"))
    return prepared(query)


RESERVATIONS_FOR_PAGE = select(t.reservations)


def holding_sku(sku: str) -> ColumnElement[bool]:
    """Reservations whose lines hold `sku`. Lines are stored as `[[line, "sku", qty], ...]`
    (codec.dump_reservation_lines) and a SKU has no quote, comma, `%` or `_`, so `,"<sku>",`
    matches that SKU's lines (SQLite ignoring ASCII case: the repository keeps exact ones)."""
    return t.reservations.c.lines.like(f'%,"{sku}",%')


RESERVE_ATTEMPT = prepared(
    select(t.reserve_attempts).where(
        t.reserve_attempts.c.idempotency_key == bindparam("idempotency_key")
    )
)
NEW_RESERVE_ATTEMPT = prepared(insert_new(t.reserve_attempts))
RELEASE_ATTEMPT = prepared(
    select(t.release_attempts).where(
        t.release_attempts.c.idempotency_key == bindparam("idempotency_key")
    )
)
NEW_RELEASE_ATTEMPT = prepared(insert_new(t.release_attempts))

# -- picks -------------------------------------------------------------------------------------

PICK_TASK = prepared(select(t.pick_tasks).where(t.pick_tasks.c.pick_id == bindparam("pick_id")))
PICK_TASKS_FOR_PAGE = select(t.pick_tasks)
UPDATE_PICK_TASK = prepared(update_where(t.pick_tasks, "pick_id"))
NEW_PICK_TASK = prepared(insert_new(t.pick_tasks))


@functools.cache
def pick_tasks(by_reservation: bool, by_location: bool, by_status: bool) -> Prepared:
    """Pick tasks in creation order, filtered by :reservation_id, :location_id and/or :status."""
    query = select(t.pick_tasks).order_by(t.pick_tasks.c.seq)
    if by_reservation:
        query = query.where(t.pick_tasks.c.reservation_id == bindparam("reservation_id"))
    if by_location:
        query = query.where(t.pick_tasks.c.location_id == bindparam("location_id"))
    if by_status:
        query = query.where(t.pick_tasks.c.status == bindparam("status"))
    return prepared(query)


# -- adjustments, receipts and the ledger ------------------------------------------------------

ADJUSTMENT_BY_KEY = prepared(
    select(t.adjustments).where(t.adjustments.c.idempotency_key == bindparam("idempotency_key"))
)
NEW_ADJUSTMENT = prepared(insert_new(t.adjustments))
RECEIPT_BY_KEY = prepared(
    select(t.receipts).where(t.receipts.c.idempotency_key == bindparam("idempotency_key"))
)
NEW_RECEIPT = prepared(insert_new(t.receipts))

# A plain insert: the ledger has no unique key to race on.
INSERT_MOVEMENT = prepared(insert(t.movements).inline())


@functools.cache
def movements(by_sku: bool, by_location: bool) -> Prepared:
    """Ledger rows in ledger order, filtered by :sku and/or :location_id."""
    query = select(t.movements).order_by(t.movements.c.seq)
    if by_sku:
        query = query.where(t.movements.c.sku == bindparam("sku"))
    if by_location:
        query = query.where(t.movements.c.location_id == bindparam("location_id"))
    return prepared(query)
