"""The SQL repository's combined reads and batched position writes, on SQLite and PostgreSQL.

A reservation or pick confirmation reads its items with their positions in one statement, a
pick confirmation locks its reservation by the pick's id, and the positions an operation
changed are saved in one executemany whose compare-and-sets must all hold. On PostgreSQL, a pick
task read after a lock that had to wait is the one the lock's holder committed (the two races
at the end: the second guards the order-released handler's read of the tasks after its lock).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, text

from services.inventory import app, domain
from services.inventory.adapters.contracts import mapper
from services.inventory.adapters.ids import UlidIds
from services.inventory.adapters.store import SqlInventory, migrate
from services.inventory.domain.repository import ItemStock
from services.kit.db import Database
from services.kit.errors import Conflict
from services.kit.uow import UnitOfWork, UnitsOfWork

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
EAST, WEST = "WH-EAST", "WH-WEST"


def _stocked(conn: Connection) -> None:
    repo = SqlInventory(conn)
    repo.save_location(domain.Location(EAST, "East"))
    repo.save_location(domain.Location(WEST, "West"))
    repo.save_item(domain.Item("SKU-A", "A"))
    repo.save_item(domain.Item("SKU-B", "B", lot_controlled=True))
    repo.save_item(domain.Item("SKU-NEW", "never stocked"))
    repo.save_position(domain.Position("SKU-A", EAST, 5, 1, 1, NOW))
    repo.save_position(domain.Position("SKU-B", EAST, 7, 0, 1, NOW))
    repo.save_position(domain.Position("SKU-A", WEST, 3, 0, 1, NOW))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="inventory", event_mapper=mapper)
    database.run_sync(_stocked)
    yield database
    database.engine.dispose()


def test_item_stock_is_the_known_items_with_their_position_at_one_location(db: Database) -> None:
    skus = ["SKU-A", "SKU-B", "SKU-NEW", "SKU-UNKNOWN"]
    stock = db.run_sync(lambda conn: SqlInventory(conn).get_item_stock(skus, EAST))
    assert stock == {
        "SKU-A": ItemStock("SKU-A", False, domain.Position("SKU-A", EAST, 5, 1, 1, NOW)),
        "SKU-B": ItemStock("SKU-B", True, domain.Position("SKU-B", EAST, 7, 0, 1, NOW)),
        # Known but never stocked here: the zero position a first save inserts.
        "SKU-NEW": ItemStock("SKU-NEW", False, domain.Position("SKU-NEW", EAST)),
    }
    west = db.run_sync(lambda conn: SqlInventory(conn).get_item_stock(["SKU-B", "SKU-A"], WEST))
    assert west == {
        "SKU-A": ItemStock("SKU-A", False, domain.Position("SKU-A", WEST, 3, 0, 1, NOW)),
        "SKU-B": ItemStock("SKU-B", True, domain.Position("SKU-B", WEST)),
    }
    assert db.run_sync(lambda conn: SqlInventory(conn).get_item_stock([], EAST)) == {}


def test_a_location_is_read_with_the_item_stock_there(db: Database) -> None:
    skus = ["SKU-A", "SKU-B", "SKU-NEW", "SKU-UNKNOWN"]

    def read(location_id: str, wanted: list[str]) -> Any:
        return db.run_sync(
            lambda conn: SqlInventory(conn).get_location_and_item_stock(location_id, wanted)
        )

    def separately(location_id: str, wanted: list[str]) -> Any:
        def both(conn: Connection) -> Any:
            repo = SqlInventory(conn)
            return repo.get_location(location_id), repo.get_item_stock(wanted, location_id)

        return db.run_sync(both)

    east, stock = read(EAST, skus)
    assert east == domain.Location(EAST, "East")
    assert stock == separately(EAST, skus)[1]
    assert set(stock) == {"SKU-A", "SKU-B", "SKU-NEW"}
    assert read(WEST, ["SKU-B", "SKU-A"]) == separately(WEST, ["SKU-B", "SKU-A"])
    # None of the SKUs known, or none asked for: the location alone.
    assert read(EAST, ["SKU-UNKNOWN"]) == (domain.Location(EAST, "East"), {})
    assert read(EAST, []) == (domain.Location(EAST, "East"), {})
    # An unknown location: nothing, whatever the SKUs.
    assert read("WH-NOWHERE", skus) == (None, {})
    # More SKUs than a prepared IN takes: the same answer from separate reads.
    many = [*skus, *(f"SKU-X{index}" for index in range(300))]
    assert read(EAST, many) == separately(EAST, many)
    # The location as it is now, inactive included.
    db.run_sync(
        lambda conn: SqlInventory(conn).save_location(domain.Location(WEST, "West", active=False))
    )
    assert read(WEST, ["SKU-A"])[0] == domain.Location(WEST, "West", active=False)


def test_positions_at_active_locations_leave_inactive_locations_out(db: Database) -> None:
    def read(conn: Connection) -> list[tuple[str, str]]:
        positions = SqlInventory(conn).positions_at_active_locations(["SKU-B", "SKU-A", "SKU-X"])
        return [(p.sku, p.location_id) for p in positions]

    assert db.run_sync(read) == [("SKU-A", EAST), ("SKU-A", WEST), ("SKU-B", EAST)]
    db.run_sync(
        lambda conn: SqlInventory(conn).save_location(domain.Location(WEST, "West", active=False))
    )
    assert db.run_sync(read) == [("SKU-A", EAST), ("SKU-B", EAST)]


def test_active_positions_and_items_are_read_together(db: Database) -> None:
    def together(skus: list[str]) -> Any:
        return db.run_sync(lambda conn: SqlInventory(conn).active_positions_and_items(skus))

    def separately(skus: list[str]) -> Any:
        def both(conn: Connection) -> Any:
            repo = SqlInventory(conn)
            return repo.positions_at_active_locations(skus), repo.get_items(skus)

        return db.run_sync(both)

    def where(positions: list[domain.Position]) -> list[tuple[str, str]]:
        return [(p.sku, p.location_id) for p in positions]

    skus = ["SKU-B", "SKU-A", "SKU-NEW", "SKU-UNKNOWN"]
    positions, items = together(skus)
    assert (positions, items) == separately(skus)
    assert where(positions) == [("SKU-A", EAST), ("SKU-A", WEST), ("SKU-B", EAST)]
    assert items["SKU-B"] == domain.Item("SKU-B", "B", lot_controlled=True)
    assert set(items) == {"SKU-A", "SKU-B", "SKU-NEW"}
    assert together([]) == ([], {})

    # An inactive location's stock is left out; a position of a SKU the item master lacks
    # (none should exist) is stock all the same.
    db.run_sync(
        lambda conn: SqlInventory(conn).save_location(domain.Location(WEST, "West", active=False))
    )
    db.run_sync(
        lambda conn: SqlInventory(conn).save_position(
            domain.Position("SKU-GHOST", EAST, 2, 0, 1, NOW)
        )
    )
    positions, items = together([*skus, "SKU-GHOST"])
    assert where(positions) == [("SKU-A", EAST), ("SKU-B", EAST), ("SKU-GHOST", EAST)]
    assert "SKU-GHOST" not in items
    many = [*skus, *(f"SKU-X{index}" for index in range(300))]
    assert together(many) == separately(many)


def test_saved_positions_compare_and_set_every_one(db: Database) -> None:
    def read(conn: Connection) -> dict[str, domain.Position]:
        return SqlInventory(conn).get_positions(["SKU-A", "SKU-B", "SKU-NEW"], EAST)

    before = db.run_sync(read)
    moved = [
        replace(before["SKU-A"], on_hand=4, version=2, updated_at=LATER),
        replace(before["SKU-B"], reserved=2, version=2, updated_at=LATER),
    ]
    db.run_sync(lambda conn: SqlInventory(conn).save_positions(moved))
    after = db.run_sync(read)
    assert [after["SKU-A"], after["SKU-B"]] == moved

    # Computed from SKU-A's version 2 (still stored) and SKU-B's version 1 (stale): the whole
    # unit of work fails and rolls back, SKU-A's update included.
    stale = [
        replace(moved[0], on_hand=3, version=3),
        replace(before["SKU-B"], reserved=5, version=2, updated_at=LATER),
    ]
    with pytest.raises(Conflict, match="changed concurrently"):
        db.run_sync(lambda conn: SqlInventory(conn).save_positions(stale))
    assert db.run_sync(read) == after

    # A first position among them is inserted, and the others still compare-and-set.
    first = replace(before["SKU-NEW"], on_hand=1, version=1, updated_at=LATER)
    with_new = [replace(moved[0], on_hand=2, version=3), first]
    db.run_sync(lambda conn: SqlInventory(conn).save_positions(with_new))
    assert db.run_sync(read) == {"SKU-A": with_new[0], "SKU-B": moved[1], "SKU-NEW": first}


def _reservation(reservation_id: str) -> domain.Reservation:
    return domain.Reservation(
        reservation_id=reservation_id,
        order_id="ord_1",
        location_id=EAST,
        status=domain.ReservationStatus.ACTIVE,
        lines=(domain.ReservationLine(1, "SKU-A", 1),),
        created_at=NOW,
        idempotency_key=f"key-{reservation_id}",
        updated_at=NOW,
    )


def _task(pick_id: str, reservation_id: str, status: domain.PickStatus) -> domain.PickTask:
    return domain.PickTask(
        pick_id=pick_id,
        reservation_id=reservation_id,
        order_id="ord_1",
        location_id=EAST,
        status=status,
        lines=(domain.ReservationLine(1, "SKU-A", 1),),
        created_at=NOW,
    )


def test_a_pick_is_read_with_its_reservation(db: Database) -> None:
    task = _task("pck_1", "rsv_1", domain.PickStatus.OPEN)
    orphan = _task("pck_orphan", "rsv_gone", domain.PickStatus.OPEN)

    def write(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.add_reservation(_reservation("rsv_1"))
        repo.add_pick_task(task)
        repo.add_pick_task(orphan)

    db.run_sync(write)

    def read(pick_id: str) -> tuple[domain.PickTask | None, domain.Reservation | None]:
        return db.run_sync(lambda conn: SqlInventory(conn).get_pick_and_reservation(pick_id))

    assert read("pck_1") == (task, _reservation("rsv_1"))
    assert read("pck_orphan") == (orphan, None)
    assert read("pck_unknown") == (None, None)


def test_a_pick_is_read_for_confirmation_with_the_item_stock_at_its_location(
    db: Database,
) -> None:
    task = replace(_task("pck_1", "rsv_1", domain.PickStatus.OPEN), location_id=WEST)
    orphan = _task("pck_orphan", "rsv_gone", domain.PickStatus.OPEN)

    def write(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.add_reservation(_reservation("rsv_1"))
        repo.add_pick_task(task)
        repo.add_pick_task(orphan)

    db.run_sync(write)

    def read(pick_id: str, skus: list[str]) -> Any:
        return db.run_sync(lambda conn: SqlInventory(conn).get_pick_for_confirmation(pick_id, skus))

    def stock(skus: list[str], location_id: str) -> dict[str, ItemStock]:
        return db.run_sync(lambda conn: SqlInventory(conn).get_item_stock(skus, location_id))

    skus = ["SKU-A", "SKU-B", "SKU-UNKNOWN"]
    # At the task's location (WEST: SKU-A stocked, SKU-B known but never stocked there).
    assert read("pck_1", skus) == (task, _reservation("rsv_1"), stock(skus, WEST))
    assert read("pck_1", skus)[2] == {
        "SKU-A": ItemStock("SKU-A", False, domain.Position("SKU-A", WEST, 3, 0, 1, NOW)),
        "SKU-B": ItemStock("SKU-B", True, domain.Position("SKU-B", WEST)),
    }
    assert read("pck_orphan", skus) == (orphan, None, stock(skus, EAST))
    assert read("pck_1", ["SKU-UNKNOWN"]) == (task, _reservation("rsv_1"), {})
    assert read("pck_1", []) == (task, _reservation("rsv_1"), {})
    assert read("pck_unknown", skus) == (None, None, {})
    many = [*skus, *(f"SKU-X{index}" for index in range(300))]
    assert read("pck_1", many) == (task, _reservation("rsv_1"), stock(many, WEST))


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@pytest.mark.postgres
async def test_a_confirmation_waiting_on_a_partial_release_sees_the_amended_task(
    postgres_url: str,
) -> None:
    # The confirmation's first statement waits for the release's lock on the reservation; the
    # task it then reads is the amended one (one line left), so confirming that line succeeds.
    migrate(postgres_url)
    database = Database(postgres_url, service="inventory", event_mapper=mapper)
    units = UnitsOfWork(database)
    ids = UlidIds()

    def clock() -> datetime:
        return NOW

    database.run_sync(_stocked)
    reserved = await units.run(
        app.reserve_stock,
        domain.ReserveStock(
            "ord_1",
            EAST,
            (domain.ReserveLine(1, "SKU-A", 2), domain.ReserveLine(2, "SKU-B", 3)),
            domain.ReservationPolicy.ALL_OR_NOTHING,
            "reserve-1",
        ),
        ids,
        clock,
    )
    assert reserved.reservation is not None
    reservation_id = reserved.reservation.reservation_id
    await units.run(app.create_pick_tasks, [reservation_id], ids, clock)
    (task,) = database.run_sync(
        lambda conn: SqlInventory(conn).pick_tasks(reservation_id=reservation_id)
    )
    released, commit = threading.Event(), threading.Event()

    def release_line_two(uow: UnitOfWork) -> domain.ReleaseOutcome:
        command = domain.ReleaseStock(
            reservation_id, "customer removed line 2", (domain.ReserveLine(2, "SKU-B", 3),), "r-1"
        )
        outcome = app.release_reservation(uow, command, clock)
        released.set()
        assert commit.wait(10)  # hold the reservation's lock until the confirmation waits
        return outcome

    def confirmation_is_waiting() -> bool:
        with database.engine.connect() as conn:
            waiting: Any = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT reservations.%'"
                )
            ).scalar_one()
            return bool(waiting)

    line_one = (domain.PickConfirmationLine(1, "SKU-A", 2),)
    try:
        release = asyncio.create_task(units.run(release_line_two))
        await asyncio.to_thread(released.wait, 10)
        confirm = asyncio.create_task(
            units.run(app.confirm_pick, task.pick_id, line_one, ids, clock)
        )
        await asyncio.to_thread(_wait_until, confirmation_is_waiting, "the confirmation waits")
        commit.set()
        _, confirmed = await asyncio.gather(release, confirm)
    finally:
        commit.set()
        await database.close()

    assert confirmed.task.status is domain.PickStatus.COMPLETED
    assert confirmed.task.lines == (domain.ReservationLine(1, "SKU-A", 2),)
    assert confirmed.task.confirmed_lines == line_one


@pytest.mark.postgres
async def test_a_release_waiting_on_another_creating_the_pick_task_creates_none(
    postgres_url: str,
) -> None:
    # Two deliveries releasing one reservation (e.g. the event re-emitted under another id): the
    # second waits for the first's lock on the reservation, then sees the task it committed.
    migrate(postgres_url)
    database = Database(postgres_url, service="inventory", event_mapper=mapper)
    units = UnitsOfWork(database)
    ids = UlidIds()

    def clock() -> datetime:
        return NOW

    database.run_sync(_stocked)
    reserved = await units.run(
        app.reserve_stock,
        domain.ReserveStock(
            "ord_1",
            EAST,
            (domain.ReserveLine(1, "SKU-A", 2),),
            domain.ReservationPolicy.ALL_OR_NOTHING,
            "reserve-1",
        ),
        ids,
        clock,
    )
    assert reserved.reservation is not None
    reservation_id = reserved.reservation.reservation_id
    created, commit = threading.Event(), threading.Event()

    def first(uow: UnitOfWork) -> None:
        app.create_pick_tasks(uow, [reservation_id], ids, clock)
        created.set()
        assert commit.wait(10)  # hold the reservation's lock until the second one waits

    def second_is_waiting() -> bool:
        with database.engine.connect() as conn:
            waiting: Any = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT reservations.%'"
                )
            ).scalar_one()
            return bool(waiting)

    try:
        one = asyncio.create_task(units.run(first))
        await asyncio.to_thread(created.wait, 10)
        two = asyncio.create_task(units.run(app.create_pick_tasks, [reservation_id], ids, clock))
        await asyncio.to_thread(_wait_until, second_is_waiting, "the second release waits")
        commit.set()
        await asyncio.gather(one, two)
        tasks = database.run_sync(
            lambda conn: SqlInventory(conn).pick_tasks(reservation_id=reservation_id)
        )
    finally:
        commit.set()
        await database.close()

    assert len(tasks) == 1
