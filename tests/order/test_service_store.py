"""Order's store on SQLite and PostgreSQL: the aggregate document round-trips, the version
compare-and-set settles concurrent transitions, and the migration matches the tables module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.kit.db import Database
from services.kit.errors import Conflict
from services.order.adapters.store import migrate
from services.order.adapters.store import repository as repo
from services.order.adapters.store.tables import metadata
from services.order.domain import FulfillmentSaga, ReserveStock
from tests.order.support import CATALOG, order_input
from tests.order.support import Clock as ManualClock


@pytest.fixture
def db(db_urls: dict[str, str]) -> Iterator[Database]:
    migrate(db_urls["order"])
    database = Database(db_urls["order"], service="order")
    yield database
    database.engine.dispose()


def test_order_round_trips_and_stale_writes_conflict(db: Database) -> None:
    clock = ManualClock()
    result = FulfillmentSaga().place(
        order_id="ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P",
        partner_id="ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P",
        order_input=order_input(("WIDGET", 2), ("GADGET", 1)),
        catalog=CATALOG,
        ctx=clock.ctx("corr-1"),
        availability={"WIDGET": {"WH-EAST": 5}, "GADGET": {"WH-EAST": 5}},
    )
    db.run_sync(repo.insert_order, result.order)
    db.run_sync(repo.enqueue, result.commands, clock.now)

    loaded = db.run_sync(repo.get_order, result.order.order_id)
    assert loaded is not None and loaded.order == result.order
    queued = db.run_sync(repo.claim_commands, clock.now, 10, 60.0)
    assert [q.command for q in queued] == list(result.commands)
    assert any(isinstance(q.command, ReserveStock) for q in queued)
    assert db.run_sync(repo.claim_commands, clock.now, 10, 60.0) == []  # leased to us

    db.run_sync(repo.save_order, loaded, loaded.order)
    with pytest.raises(Conflict):
        db.run_sync(repo.save_order, loaded, loaded.order)  # same version: someone else won
    with pytest.raises(Conflict):
        db.run_sync(repo.insert_order, result.order)  # same (partner, external id)


def test_migration_matches_the_tables_module(db: Database) -> None:
    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    kit = ("'outbox'", "'inbox'", "ix_outbox", "ix_inbox")
    assert [d for d in drift if not any(name in repr(d) for name in kit)] == []
