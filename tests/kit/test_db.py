"""The unit of work and the per-service migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Connection, inspect, text

from services.kit import inbox, outbox
from services.kit.db import Database, make_engine
from services.kit.migrations import current_revision, migrate
from services.kit.request_context import correlation_scope, current_correlation_id
from tests.fixtures.kittest.harness import MIGRATIONS, open_db, produce, read_effects
from tests.fixtures.kittest.service.tables import effects


def test_migrations_create_kit_tables_and_are_idempotent(db_url: str) -> None:
    migrate(db_url, MIGRATIONS)
    migrate(db_url, MIGRATIONS)  # a second boot must be a no-op
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    finally:
        engine.dispose()
    assert {"outbox", "inbox", "effects", "alembic_version"} <= tables
    assert {"ix_outbox_pending", "ix_outbox_sent_at"} <= indexes
    assert current_revision(db_url, MIGRATIONS) == "0001"


async def test_rollback_leaves_nothing_behind(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url)
    woken: list[bool] = []
    db.add_outbox_listener(lambda: woken.append(True))

    def unit_of_work(conn: Connection) -> None:
        produce(conn, pb, [("t-1", 1), ("t-1", 2)])
        assert inbox.claim(conn, "kittest-x", "some-event")
        conn.execute(effects.insert().values(event_id="e", thing_id="t-1", n=1, consumer="x"))
        raise RuntimeError("business rule broke after the writes")

    with pytest.raises(RuntimeError):
        await db.run(unit_of_work)

    def counts(conn: Connection) -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("outbox", "inbox", "effects")
        )

    assert await db.run(counts) == (0, 0, 0)
    assert woken == []  # a rolled-back append must not wake the relay
    await db.close()


async def test_commit_keeps_everything_and_wakes_the_relay(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url)
    woken: list[bool] = []
    db.add_outbox_listener(lambda: woken.append(True))

    def unit_of_work(conn: Connection) -> list[str]:
        ids = produce(conn, pb, [("t-1", 1)])
        conn.execute(effects.insert().values(event_id=ids[0], thing_id="t-1", n=1, consumer="x"))
        return ids

    ids = await db.run(unit_of_work)
    rows = await db.run(outbox.fetch_pending, 10)
    assert [row.event_id for row in rows] == ids
    assert await db.run(read_effects) == [(ids[0], "t-1", 1)]
    assert woken == [True]
    await db.close()


async def test_outbox_rows_carry_cloudevents_headers(sqlite_url: str, pb: ModuleType) -> None:
    db = open_db(sqlite_url)

    def unit_of_work(conn: Connection) -> str:
        return outbox.append(
            conn,
            pb.ThingHappened(thing_id="t-9", n=1),
            "t-9",
            correlation_id="corr-1",
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )

    event_id = await db.run(unit_of_work)
    (row,) = await db.run(outbox.fetch_pending, 10)
    assert row.event_id == event_id and row.subject == "crossdock.order.thing_happened.v1"
    h = row.headers
    assert h["ce-specversion"] == "1.0"
    assert h["ce-id"] == event_id
    assert h["ce-type"] == "crossdock.order.thing_happened.v1"
    assert h["ce-source"] == "crossdock/kittest"
    assert h["ce-subject"] == "t-9"
    assert h["ce-time"].endswith("Z") and "T" in h["ce-time"]
    assert h["ce-dataschema"] == "urn:crossdock:schema:kittest.v1.ThingHappened"
    assert h["content-type"] == "application/protobuf"
    assert h["x-correlation-id"] == "corr-1"
    assert h["traceparent"].startswith("00-0af7651916cd43dd")
    assert outbox.headers_for_publish(row)["Nats-Msg-Id"] == event_id
    await db.close()


async def test_only_the_declared_producer_may_append(sqlite_url: str, pb: ModuleType) -> None:
    open_db(sqlite_url).engine.dispose()
    other = Database(sqlite_url, service="billing")

    def unit_of_work(conn: Connection) -> None:
        produce(conn, pb, [("t-1", 1)])

    with pytest.raises(ValueError, match="producer"):
        await other.run(unit_of_work)
    await other.close()


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


async def test_sqlite_single_writer_serializes_units_of_work(tmp_path: Path) -> None:
    """Concurrent units of work on one Database never interleave (one worker thread)."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = Database(url, service="kittest")
    await db.run(lambda c: c.exec_driver_sql("CREATE TABLE n (v INTEGER)"))
    await db.run(lambda c: c.exec_driver_sql("INSERT INTO n VALUES (0)"))

    def increment(conn: Connection) -> None:
        value = conn.exec_driver_sql("SELECT v FROM n").scalar_one()
        conn.exec_driver_sql("UPDATE n SET v = ?", (value + 1,))

    await asyncio.gather(*(db.run(increment) for _ in range(50)))
    assert await db.run(lambda c: c.exec_driver_sql("SELECT v FROM n").scalar_one()) == 50
    await db.close()
    # And another process (here: a plain sqlite3 connection) sees committed data.
    assert sqlite3.connect(tmp_path / "x.db").execute("SELECT v FROM n").fetchone() == (50,)


async def test_close_runs_every_queued_unit_of_work_first(tmp_path: Path) -> None:
    """Units of work queued behind a slow one still commit before close() returns."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", service="kittest")
    await db.run(lambda c: c.exec_driver_sql("CREATE TABLE n (v INTEGER)"))
    release = threading.Event()

    def slow(conn: Connection) -> None:
        release.wait(5)
        conn.exec_driver_sql("INSERT INTO n VALUES (0)")

    def insert(conn: Connection, value: int) -> None:
        conn.exec_driver_sql("INSERT INTO n VALUES (?)", (value,))

    tasks = [asyncio.ensure_future(db.run(slow))]
    tasks += [asyncio.ensure_future(db.run(insert, value)) for value in range(1, 6)]
    await asyncio.sleep(0.05)
    release.set()
    await db.close()
    values = sqlite3.connect(tmp_path / "x.db").execute("SELECT v FROM n ORDER BY v").fetchall()
    assert values == [(v,) for v in range(6)]
    await asyncio.gather(*tasks)
    with pytest.raises(RuntimeError, match="closed"):
        await db.run(insert, 9)


async def test_a_cancelled_unit_of_work_is_skipped_if_queued_and_finished_if_running(
    tmp_path: Path,
) -> None:
    """Cancelling the caller drops a unit of work that has not started; one that is running
    cannot be interrupted, so it commits, and its result goes nowhere."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", service="kittest")
    await db.run(lambda c: c.exec_driver_sql("CREATE TABLE n (v INTEGER)"))
    started, release = threading.Event(), threading.Event()

    def running(conn: Connection) -> int:
        started.set()
        release.wait(5)
        conn.exec_driver_sql("INSERT INTO n VALUES (1)")
        return 1

    def queued(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO n VALUES (2)")

    first = asyncio.ensure_future(db.run(running))
    second = asyncio.ensure_future(db.run(queued))
    await asyncio.to_thread(started.wait, 5)
    first.cancel()
    second.cancel()
    release.set()
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await db.run(lambda c: c.exec_driver_sql("SELECT v FROM n").fetchall()) == [(1,)]
    await db.close()


async def test_a_unit_of_work_sees_the_callers_context_and_raises_its_errors(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", service="kittest")
    with correlation_scope("corr-of-the-caller"):
        assert await db.run(lambda _c: current_correlation_id()) == "corr-of-the-caller"
    assert await db.run(lambda _c: current_correlation_id()) is None

    def fail(_conn: Connection) -> None:
        raise KeyError("from the worker")

    with pytest.raises(KeyError, match="from the worker"):
        await db.run(fail)
    name = await db.run(lambda _c: threading.current_thread().name)
    assert name.startswith("db-kittest")  # a DB worker, not the loop's thread
    await db.close()


async def test_a_real_contract_event_appends_for_its_producer(sqlite_url: str) -> None:
    from crossdock.events.v1 import order_events_pb2

    open_db(sqlite_url).engine.dispose()
    order = Database(sqlite_url, service="order")

    def unit_of_work(conn: Connection) -> str:
        event = order_events_pb2.OrderCancelled(order_id="O-1")
        return outbox.append(conn, event, "O-1", correlation_id="c")

    event_id = await order.run(unit_of_work)
    (row,) = await order.run(outbox.fetch_pending, 10)
    assert row.event_id == event_id and row.subject == "crossdock.order.cancelled.v1"
    assert row.headers["ce-source"] == "crossdock/order"
    assert row.headers["ce-dataschema"].endswith("crossdock.events.v1.OrderCancelled")
    await order.close()


async def test_units_of_work_reuse_one_connection_per_worker_and_survive_its_loss(
    postgres_url: str,
) -> None:
    """Each DB worker keeps its connection across units of work; when the server drops it, the
    unit of work in hand fails (callers retry) and the next one reconnects."""
    db = Database(postgres_url, service="kittest", pool_size=1)
    pid = await db.run(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    assert await db.run(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) == pid

    killer = make_engine(postgres_url)
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()

    with pytest.raises(Exception, match=r"(?i)terminat|closed|connection"):
        await db.run(lambda c: c.exec_driver_sql("SELECT 1").scalar_one())
    new_pid = await db.run(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    assert new_pid != pid
    await db.close()
