"""The SQL repository's concurrency contract on SQLite and PostgreSQL, deterministically staged.

Two units of work read the same position version; the first to write wins and the second's
compare-and-set raises kit Conflict, which is what makes racing reservations end with one winner.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, insert

from services.inventory import domain
from services.inventory.adapters.ids import UlidIds
from services.inventory.adapters.store import SqlInventory, migrate, tables
from services.kit.db import Database
from services.kit.errors import Conflict
from services.kit.migrations import migrate as migrate_to
from services.kit.migrations import service_script_location

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str):  # type: ignore[no-untyped-def]
    migrate(db_url)
    database = Database(db_url, service="inventory")
    yield database
    database.engine.dispose()


def test_stale_position_write_conflicts(db: Database) -> None:
    def stock(conn: Connection) -> None:
        repo = SqlInventory(conn)
        repo.save_location(domain.Location("WH-EAST", "East"))
        repo.save_item(domain.Item("SKU-A", "A"))
        repo.save_position(domain.Position("SKU-A", "WH-EAST", on_hand=1, version=1))

    db.run_sync(stock)
    read = db.run_sync(lambda conn: SqlInventory(conn).get_position("SKU-A", "WH-EAST"))
    taken = replace(read, reserved=1, version=read.version + 1)
    db.run_sync(lambda conn: SqlInventory(conn).save_position(taken))
    with pytest.raises(Conflict):
        # A second writer that computed its grant from the same (now stale) version loses.
        db.run_sync(lambda conn: SqlInventory(conn).save_position(taken))
    with pytest.raises(Conflict):
        # So does a second "first insert" of a position someone else created meanwhile.
        fresh = domain.Position("SKU-A", "WH-EAST", on_hand=5, version=1)
        db.run_sync(lambda conn: SqlInventory(conn).save_position(fresh))
    final = db.run_sync(lambda conn: SqlInventory(conn).get_position("SKU-A", "WH-EAST"))
    assert (final.on_hand, final.reserved, final.version) == (1, 1, 2)


def test_domain_round_trips_through_sql(db: Database) -> None:
    ids = UlidIds()

    def scenario(conn: Connection) -> domain.ReserveOutcome:
        repo = SqlInventory(conn)
        repo.save_location(domain.Location("WH-EAST", "East"))
        repo.save_item(domain.Item("SKU-A", "A", lot_controlled=True))
        request = domain.ReceiveStock(
            "WH-EAST",
            domain.ReceiptSource.PURCHASE_ORDER,
            "PO-1",
            (domain.ReceiptLine("SKU-A", 5, "LOT-1"),),
            "receipt-key-1",
        )
        domain.receive(repo, ids, request, NOW)
        reserve = domain.ReserveStock(
            "ord_1",
            "WH-EAST",
            (domain.ReserveLine(1, "SKU-A", 2),),
            domain.ReservationPolicy.ALL_OR_NOTHING,
            "reserve-key-1",
        )
        return domain.reserve(repo, ids, reserve, NOW)

    outcome = db.run_sync(scenario)
    assert outcome.reservation is not None

    def audit(conn: Connection) -> list[str]:
        return domain.invariant_violations(SqlInventory(conn))

    assert db.run_sync(audit) == []
    stored = db.run_sync(
        lambda conn: SqlInventory(conn).get_reservation(outcome.reservation.reservation_id)
    )
    assert stored == outcome.reservation


def test_migrations_match_the_tables_module(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.inventory.adapters.store.tables import metadata

    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    # The kit's outbox and inbox are created by the migration but not declared here.
    assert [d for d in drift if not _is_kit_table(d)] == []


def _is_kit_table(diff: object) -> bool:
    text = repr(diff)
    return "'outbox'" in text or "'inbox'" in text or "ix_outbox" in text or "ix_inbox" in text


def test_upgrading_keeps_existing_stock_sellable(db_url: str) -> None:
    """Rows written by revision 0001 read as they always meant: all sellable, nothing apart."""
    location = service_script_location("inventory")
    migrate_to(db_url, location, "0001")
    database = Database(db_url, service="inventory")
    try:

        def old_rows(conn: Connection) -> None:
            conn.execute(
                insert(tables.positions).values(
                    sku="SKU-A", location_id="WH-EAST", on_hand=5, reserved=0, version=1
                )
            )
            conn.execute(
                insert(tables.movements).values(
                    sku="SKU-A",
                    location_id="WH-EAST",
                    quantity_delta=5,
                    kind=domain.MovementKind.RECEIPT.value,
                    reference_id="rcp_1",
                    occurred_at=NOW.timestamp(),
                )
            )
            conn.execute(
                insert(tables.receipts).values(
                    receipt_id="rcp_1",
                    location_id="WH-EAST",
                    source=domain.ReceiptSource.PURCHASE_ORDER.value,
                    source_reference="PO-1",
                    lines='[["SKU-A",5,""]]',
                    created_at=NOW.timestamp(),
                    idempotency_key="receipt-key-1",
                    request_fingerprint="f",
                )
            )

        database.run_sync(old_rows)
        migrate_to(db_url, location, "head")

        def read(conn: Connection) -> tuple[domain.Position, domain.Receipt | None, list[str]]:
            repo = SqlInventory(conn)
            audit = domain.invariant_violations(repo)
            return (
                repo.get_position("SKU-A", "WH-EAST"),
                repo.get_receipt_by_key("receipt-key-1"),
                audit,
            )

        found, receipt, audit = database.run_sync(read)
    finally:
        database.engine.dispose()
    assert (found.on_hand, found.non_sellable) == (5, 0)
    assert receipt is not None
    assert receipt.lines == (
        domain.ReceiptLine("SKU-A", 5, "", domain.StockCondition.SELLABLE, ""),
    )
    assert audit == []
