"""The kit's one lease: due rows are taken once until their lease runs out, on SQLite and
PostgreSQL, including by two claimers at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, select

from services.kit.db import Database
from services.kit.leases import lease_due

metadata = MetaData()
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False),
    Column("lease_until", Float, nullable=False),
)


def seed(conn: Connection, count: int) -> None:
    metadata.create_all(conn)
    conn.execute(
        jobs.insert(), [{"id": i, "name": f"job-{i}", "lease_until": 0.0} for i in range(count)]
    )


def claim(conn: Connection, now: float, limit: int, lease_seconds: float) -> list[int]:
    query = select(jobs.c.id).where(jobs.c.lease_until <= now).order_by(jobs.c.id).limit(limit)
    rows = lease_due(
        conn,
        query,
        table=jobs,
        key=jobs.c.id,
        lease_column=jobs.c.lease_until,
        lease_until=now + lease_seconds,
    )
    return [int(row.id) for row in rows]


async def test_a_leased_row_is_not_taken_again_until_its_lease_runs_out(db_url: str) -> None:
    db = Database(db_url, service="leasetest")
    await db.run(seed, 5)
    assert await db.run(claim, 100.0, 3, 30.0) == [0, 1, 2]
    assert await db.run(claim, 101.0, 10, 30.0) == [3, 4]
    assert await db.run(claim, 110.0, 10, 30.0) == []
    assert await db.run(claim, 130.5, 10, 30.0) == [0, 1, 2]  # the first leases ran out
    await db.close()


async def test_concurrent_claimers_never_share_a_row(db_url: str) -> None:
    first = Database(db_url, service="leasetest")
    second = Database(db_url, service="leasetest")
    await first.run(seed, 200)
    taken = await asyncio.gather(
        *(db.run(claim, 100.0, 7, 30.0) for _ in range(15) for db in (first, second))
    )
    ids = [job for batch in taken for job in batch]
    assert len(ids) == len(set(ids)) == 200
    await first.close()
    await second.close()
