"""The kit's unit of work: publishing through the service's one mapper, Conflict retries, and the
batch form (one transaction, one savepoint per item), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pytest
from sqlalchemy import Connection, select, text

from services.kit import outbox
from services.kit.errors import Conflict
from services.kit.events import event_spec
from services.kit.request_context import correlation_scope
from services.kit.uow import EventMapper, Mapped, UnitOfWork, UnitsOfWork
from tests.fixtures.kittest.harness import SERVICE, open_db
from tests.fixtures.kittest.service.tables import effects


@dataclass(frozen=True)
class ThingCounted:
    """A domain event of the test service: no protobuf in sight."""

    thing_id: str
    n: int


@dataclass(frozen=True)
class ThingForgotten:
    """A domain event nobody mapped."""

    thing_id: str


def mapper_for(pb: ModuleType) -> EventMapper:
    mapper = EventMapper(SERVICE)

    @mapper.maps(ThingCounted)
    def _counted(event: ThingCounted) -> Mapped:
        return pb.ThingHappened(thing_id=event.thing_id, n=event.n), event.thing_id

    return mapper


def count(uow: UnitOfWork, thing_id: str, n: int) -> str:
    """A use case: record the effect and announce it."""
    uow.conn.execute(
        effects.insert().values(event_id=f"{thing_id}-{n}", thing_id=thing_id, n=n, consumer="uc")
    )
    return uow.publish(ThingCounted(thing_id, n))


def counts(conn: Connection) -> tuple[int, int]:
    return (
        conn.execute(text("SELECT COUNT(*) FROM outbox")).scalar_one(),
        conn.execute(text("SELECT COUNT(*) FROM effects")).scalar_one(),
    )


async def test_publish_maps_the_domain_event_into_the_outbox(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url, event_mapper=mapper_for(pb))
    units = UnitsOfWork(db)
    with correlation_scope("corr-from-the-call"):
        event_id = await units.run(count, "t-1", 7)
    rows = await db.run(outbox.fetch_pending, 10)
    assert [row.event_id for row in rows] == [event_id]
    row = rows[0]
    assert row.subject == event_spec(pb.ThingHappened).subject
    assert row.aggregate_id == "t-1"
    assert row.headers["x-correlation-id"] == "corr-from-the-call"
    assert pb.ThingHappened.FromString(row.payload) == pb.ThingHappened(thing_id="t-1", n=7)
    await db.close()


async def test_an_unmapped_event_fails_and_leaves_nothing(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url, event_mapper=mapper_for(pb))

    def forget(uow: UnitOfWork) -> None:
        count(uow, "t-1", 1)
        uow.publish(ThingForgotten("t-1"))

    with pytest.raises(TypeError, match="no event mapping for ThingForgotten"):
        await UnitsOfWork(db).run(forget)
    assert await db.run(counts) == (0, 0)
    await db.close()


async def test_a_database_without_a_mapper_refuses_to_publish(sqlite_url: str) -> None:
    db = open_db(sqlite_url)
    with pytest.raises(RuntimeError, match="no EventMapper"):
        await UnitsOfWork(db).run(count, "t-1", 1)
    assert await db.run(counts) == (0, 0)
    await db.close()


async def test_a_conflict_reruns_the_whole_use_case(db_url: str, pb: ModuleType) -> None:
    db = open_db(db_url, event_mapper=mapper_for(pb))
    attempts: list[int] = []

    def contended(uow: UnitOfWork) -> str:
        event_id = count(uow, "t-1", 1)
        attempts.append(1)
        if len(attempts) < 3:
            raise Conflict("someone else moved the thing")  # after writing: must roll back
        return event_id

    await UnitsOfWork(db).run(contended)
    assert len(attempts) == 3
    assert await db.run(counts) == (1, 1)  # the two lost attempts left nothing


async def test_conflicts_give_up_after_the_configured_attempts(
    sqlite_url: str, pb: ModuleType
) -> None:
    db = open_db(sqlite_url, event_mapper=mapper_for(pb))

    def always(uow: UnitOfWork) -> None:
        count(uow, "t-1", 1)
        raise Conflict("never settles")

    with pytest.raises(Conflict):
        await UnitsOfWork(db, conflict_attempts=2).run(always)
    assert await db.run(counts) == (0, 0)
    await db.close()


async def test_a_batch_commits_the_good_items_and_rolls_back_the_bad_one(
    db_url: str, pb: ModuleType
) -> None:
    db = open_db(db_url, event_mapper=mapper_for(pb))
    woken: list[int] = []

    def maybe(uow: UnitOfWork, n: int) -> int:
        count(uow, f"t-{n}", n)
        uow.after_commit(lambda: woken.append(n))
        if n == 2:
            raise ValueError("item 2 is bad")
        return n * 10

    results = await UnitsOfWork(db).run_batch(maybe, [1, 2, 3])
    assert [r.ok for r in results] == [True, False, True]
    assert [r.value for r in results] == [10, None, 30]
    assert isinstance(results[1].error, ValueError)
    assert await db.run(counts) == (2, 2)
    pending = await db.run(outbox.fetch_pending, 10)
    assert sorted(row.aggregate_id for row in pending) == ["t-1", "t-3"]
    assert woken == [1, 3]  # the rolled-back item's callback never runs
    await db.close()


async def test_a_batch_reruns_only_the_items_that_lost_a_conflict(
    db_url: str, pb: ModuleType
) -> None:
    db = open_db(db_url, event_mapper=mapper_for(pb))
    tries: dict[int, int] = {}

    def flaky(uow: UnitOfWork, n: int) -> int:
        tries[n] = tries.get(n, 0) + 1
        count(uow, f"t-{n}", n)
        if n == 2 and tries[n] == 1:
            raise Conflict("lost the first race")
        return n

    results = await UnitsOfWork(db).run_batch(flaky, [1, 2, 3])
    assert [r.value for r in results] == [1, 2, 3]
    assert tries == {1: 1, 2: 2, 3: 1}
    rows = await db.run(lambda conn: conn.execute(select(effects.c.thing_id)).scalars().all())
    assert sorted(rows) == ["t-1", "t-2", "t-3"]
    await db.close()


async def test_consumer_code_gets_the_transactions_unit_of_work(
    sqlite_url: str, pb: ModuleType
) -> None:
    db = open_db(sqlite_url, event_mapper=mapper_for(pb))

    def handler(conn: Connection) -> bool:
        first = UnitOfWork.of(conn)
        first.publish(ThingCounted("t-9", 9))
        return UnitOfWork.of(conn) is first

    assert await db.run(handler)
    assert [row.aggregate_id for row in await db.run(outbox.fetch_pending, 10)] == ["t-9"]
    await db.close()


def test_a_mapper_refuses_two_mappings_for_one_event() -> None:
    mapper = EventMapper("kittest")
    mapper.register(ThingCounted, lambda e: (None, e.thing_id))  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="already mapped"):
        mapper.register(ThingCounted, lambda e: (None, e.thing_id))  # type: ignore[arg-type,return-value]


async def test_a_deadlock_victim_is_re_run_like_a_lost_compare_and_set(postgres_url: str) -> None:
    """Two units of work lock two rows in opposite orders: PostgreSQL aborts one with
    deadlock_detected, and `UnitsOfWork.run` re-runs it instead of failing the caller."""
    import asyncio
    import threading

    from services.kit.db import Database

    db = Database(postgres_url, service="kittest", pool_size=2)
    await db.run(lambda c: c.exec_driver_sql("CREATE TABLE pair (k int PRIMARY KEY, v int)"))
    await db.run(lambda c: c.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)"))
    both_hold_one = threading.Barrier(2, timeout=10)
    runs: list[str] = []

    def bump(uow: UnitOfWork, first: int, second: int) -> None:
        runs.append(f"{first}->{second}")
        uow.conn.execute(text("UPDATE pair SET v = v + 1 WHERE k = :k"), {"k": first})
        if runs.count(f"{first}->{second}") == 1:  # the first attempt meets the other one
            both_hold_one.wait()
        uow.conn.execute(text("UPDATE pair SET v = v + 1 WHERE k = :k"), {"k": second})

    units = UnitsOfWork(db)
    await asyncio.gather(units.run(bump, 1, 2), units.run(bump, 2, 1))

    values = await db.run(lambda c: c.exec_driver_sql("SELECT v FROM pair ORDER BY k").all())
    assert [v for (v,) in values] == [2, 2]  # each unit of work applied exactly once
    assert len(runs) == 3  # one of the two was the victim and ran again
    await db.close()
