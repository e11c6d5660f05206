"""A first INSERT that loses a race on its unique key, on SQLite and PostgreSQL.

The store writes new rows with INSERT ... ON CONFLICT DO NOTHING and no savepoint: losing must
still end in kit `Conflict`, leave the transaction usable (on PostgreSQL a unique violation would
abort it), and the retry must see the winner's row.
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
from services.inventory.domain.model import ReserveAttempt
from services.kit.db import Database
from services.kit.errors import Conflict
from services.kit.uow import UnitOfWork, UnitsOfWork

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EAST = "WH-EAST"
KEY = "reserve-key-1"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="inventory", event_mapper=mapper)

    def stock(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.save_location(domain.Location(EAST, "East"))
        repo.save_item(domain.Item("SKU-A", "A"))
        repo.save_item(domain.Item("SKU-EMPTY", "never stocked"))

    database.run_sync(stock)
    yield database
    database.engine.dispose()


def _attempt(fingerprint: str) -> ReserveAttempt:
    return ReserveAttempt(
        idempotency_key=KEY,
        request_fingerprint=fingerprint,
        order_id="ord_1",
        location_id=EAST,
        reservation_id=None,
        shortfalls=(),
        created_at=NOW,
    )


def test_a_lost_first_insert_is_a_conflict_in_a_transaction_that_stays_usable(
    db: Database,
) -> None:
    # The loser decided to insert before the winner committed (it read no row).
    unread = db.run_sync(lambda conn: SqlInventory(conn).get_position("SKU-A", EAST))
    assert unread.version == 0

    def winner(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.add_reserve_attempt(_attempt("winner"))
        repo.save_position(replace(unread, on_hand=3, version=1, updated_at=NOW))

    db.run_sync(winner)

    def loser(conn: Connection) -> tuple[str, str, int]:
        repo = SqlInventory(conn)
        lost = []
        with pytest.raises(Conflict) as key_lost:
            repo.add_reserve_attempt(_attempt("loser"))
        lost.append(str(key_lost.value))
        with pytest.raises(Conflict) as position_lost:
            repo.save_position(replace(unread, on_hand=9, version=1, updated_at=NOW))
        lost.append(str(position_lost.value))
        # Still usable: these reads would fail in an aborted PostgreSQL transaction.
        seen = repo.get_reserve_attempt(KEY)
        assert seen is not None
        return seen.request_fingerprint, " / ".join(lost), repo.get_position("SKU-A", EAST).on_hand

    fingerprint, lost, on_hand = db.run_sync(loser)
    assert (fingerprint, on_hand) == ("winner", 3)
    assert lost == (
        f"idempotency key {KEY} was written concurrently / "
        "position SKU-A@WH-EAST was written concurrently"
    )


def test_a_new_reservation_or_pick_task_id_already_taken_is_a_conflict(db: Database) -> None:
    reservation = domain.Reservation(
        reservation_id="rsv_1",
        order_id="ord_1",
        location_id=EAST,
        status=domain.ReservationStatus.ACTIVE,
        lines=(domain.ReservationLine(1, "SKU-A", 1),),
        created_at=NOW,
        idempotency_key=KEY,
        updated_at=NOW,
    )
    task = domain.PickTask(
        pick_id="pck_1",
        reservation_id="rsv_1",
        order_id="ord_1",
        location_id=EAST,
        status=domain.PickStatus.OPEN,
        lines=reservation.lines,
        created_at=NOW,
    )

    def first(conn: Connection) -> None:
        SqlInventory(conn).add_reservation(reservation)
        SqlInventory(conn).add_pick_task(task)

    db.run_sync(first)

    def second(conn: Connection) -> tuple[domain.Reservation | None, domain.PickTask | None]:
        repo = SqlInventory(conn)
        with pytest.raises(Conflict):
            repo.add_reservation(replace(reservation, order_id="ord_2"))
        with pytest.raises(Conflict):
            repo.add_pick_task(replace(task, order_id="ord_2"))
        return repo.get_reservation("rsv_1"), repo.get_pick_task("pck_1")

    kept_reservation, kept_task = db.run_sync(second)
    assert kept_reservation == reservation
    assert kept_task == task


def _reserve_nothing() -> domain.ReserveStock:
    # Nothing is stocked, so the only row this request writes is its idempotency key.
    return domain.ReserveStock(
        "ord_1",
        EAST,
        (domain.ReserveLine(1, "SKU-EMPTY", 1),),
        domain.ReservationPolicy.PARTIAL,
        KEY,
    )


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@pytest.mark.postgres
async def test_racing_reserves_with_one_key_conflict_and_the_retry_replays_the_winner(
    postgres_url: str,
) -> None:
    migrate(postgres_url)
    database = Database(postgres_url, service="inventory", event_mapper=mapper)
    units = UnitsOfWork(database)
    ids = UlidIds()

    def clock() -> datetime:
        return NOW

    def stock(conn: Connection) -> None:
        SqlInventory(conn).save_location(domain.Location(EAST, "East"))
        SqlInventory(conn).save_item(domain.Item("SKU-EMPTY", "never stocked"))

    database.run_sync(stock)
    inserted, commit = threading.Event(), threading.Event()
    loser_runs: list[str] = []

    def winner(uow: UnitOfWork) -> domain.ReserveOutcome:
        outcome = app.reserve_stock(uow, _reserve_nothing(), ids, clock)
        inserted.set()
        assert commit.wait(10)  # hold the key's uncommitted row until the loser waits on it
        return outcome

    def loser(uow: UnitOfWork) -> domain.ReserveOutcome:
        loser_runs.append("run")
        try:
            return app.reserve_stock(uow, _reserve_nothing(), ids, clock)
        except Conflict:
            loser_runs.append("conflict")
            raise

    def loser_is_waiting() -> bool:
        with database.engine.connect() as conn:
            waiting: Any = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO reserve_attempts%'"
                )
            ).scalar_one()
            return bool(waiting)

    try:
        first = asyncio.create_task(units.run(winner))
        await asyncio.to_thread(inserted.wait, 10)
        second = asyncio.create_task(units.run(loser))
        await asyncio.to_thread(_wait_until, loser_is_waiting, "the loser waits on the key")
        commit.set()
        won, replayed = await asyncio.gather(first, second)
    finally:
        commit.set()
        await database.close()

    assert won.shortfalls == replayed.shortfalls == (domain.Shortfall(1, "SKU-EMPTY", 1),)
    assert not won.replayed and replayed.replayed
    # The loser's INSERT waited for the winner, inserted nothing, and its re-run replayed.
    assert loser_runs == ["run", "conflict", "run"]
