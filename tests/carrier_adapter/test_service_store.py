"""carrier-adapter's store on a migrated SQLite file: the payload log's bounded retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store.payload_buffer import PayloadBuffer
from services.carrier_adapter.adapters.store.payloads import count_payloads
from services.carrier_adapter.adapters.store.retention import sweep
from services.carrier_adapter.adapters.store.tables import payload_log
from services.carrier_adapter.domain.payload_log import (
    PayloadDirection,
    PayloadRecorder,
    RetentionPolicy,
)
from services.kit.db import Database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'carrier_adapter.db'}"
    migrate(url)
    database = Database(url, service=SERVICE)
    yield database
    await database.close()


async def record(
    db: Database, account: str, ages: list[timedelta], direction: PayloadDirection
) -> None:
    buffer = PayloadBuffer()
    for age in ages:
        recorder = PayloadRecorder("sandbox", account, buffer, lambda age=age: NOW - age)
        recorder.record(operation="track", direction=direction, body="{}", reference=account)
    assert await buffer.flush(db) == len(ages)


async def test_sweep_keeps_errors_longer_and_bounds_each_account(db: Database) -> None:
    policy = RetentionPolicy(
        max_age=timedelta(days=14), error_max_age=timedelta(days=90), max_records_per_account=3
    )
    old, recent = timedelta(days=30), timedelta(hours=1)
    await record(db, "quiet", [old, recent], PayloadDirection.RESPONSE)
    await record(db, "quiet", [old, timedelta(days=100)], PayloadDirection.ERROR)
    await record(
        db, "chatty", [recent + timedelta(minutes=m) for m in range(5)], PayloadDirection.RESPONSE
    )

    deleted = await db.run(sweep, policy, NOW, timedelta(days=1))

    # quiet: the old response and the 100-day error go; the 30-day error stays (90-day bound).
    assert await db.run(count_payloads, "quiet") == 2
    # chatty: all recent, but only the newest three are kept.
    assert await db.run(count_payloads, "chatty") == 3
    assert deleted == 4
    newest = await db.run(
        lambda conn: sorted(
            conn.execute(
                select(payload_log.c.recorded_at).where(payload_log.c.reference == "chatty")
            ).scalars()
        )
    )
    assert newest == [(NOW - recent - timedelta(minutes=m)).timestamp() for m in (2, 1, 0)]
    assert await db.run(sweep, policy, NOW, timedelta(days=1)) == 0
