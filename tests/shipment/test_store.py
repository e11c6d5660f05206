"""Shipment's store on SQLite and PostgreSQL: the migrations match the tables module, and a
return's units queue and become one return parcel keyed by the return id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.kit.db import Database
from services.kit.values import Address
from services.shipment.adapters.store import migrate
from services.shipment.adapters.store import shipments as store
from services.shipment.adapters.store.tables import metadata
from services.shipment.domain.model import ServiceLevel, ShipmentKind
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import OrderRef, PendingPick, Shipment

T = TypeVar("T")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ORDER = "ord_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
RETURN = "rma_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
HOME = Address(
    name="Ada", lines=("1 Rodeo Dr",), city="Beverly Hills", postal_code="90210", country_code="US"
)
DOCK = Address(
    name="DC", lines=("100 Dock Rd",), city="Atlanta", postal_code="30301", country_code="US"
)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="shipment")
    yield database
    database.engine.dispose()


def test_migration_matches_the_tables_module(db: Database) -> None:
    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    kit = ("'outbox'", "'inbox'", "ix_outbox", "ix_inbox")
    assert [d for d in drift if not any(name in repr(d) for name in kit)] == []


def run(db: Database, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    return db.run_sync(lambda conn: fn(conn, *args, **kwargs))


def test_a_returns_units_queue_once_and_become_its_one_return_parcel(db: Database) -> None:
    parcel = PendingPick(
        RETURN, ORDER, "EAST", (PickedUnits(1, "KETTLE", 2),), "corr-1", return_id=RETURN
    )
    assert run(db, store.add_pending_pick, parcel, now=NOW.timestamp())
    assert not run(db, store.add_pending_pick, parcel, now=NOW.timestamp())
    # Not one of the order's picks: an order cancellation never turns it into a shipment.
    assert run(db, store.pending_picks_of, ORDER) == []
    (leased,) = run(db, store.lease_due_picks, NOW.timestamp(), 10, 60.0)
    assert leased == parcel

    order = OrderRef(ORDER, "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", 4, HOME)
    shipment = Shipment.create_return(
        "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", leased, order, [], DOCK, ServiceLevel.STANDARD, NOW
    )
    run(db, store.insert_shipment, shipment, label_due_at=NOW.timestamp(), now=NOW.timestamp())
    assert run(db, store.lease_due_picks, NOW.timestamp() + 600, 10, 60.0) == []
    stored = run(db, store.shipment_of_pick, RETURN)
    assert stored is not None and stored.kind is ShipmentKind.RETURN
    assert (stored.return_id, stored.pick_id, stored.ship_from) == (RETURN, "", HOME)
    assert run(db, store.shipments_of, ORDER) == []  # outbound shipments only
    assert not run(db, store.add_pending_pick, parcel, now=NOW.timestamp())  # shipped


def test_the_worker_leases_exactly_the_label_work_and_picks_that_are_due_and_free(
    db: Database,
) -> None:
    at = NOW.timestamp()
    order = OrderRef(ORDER, "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P", 2, HOME)

    def ids(leased: list[Shipment]) -> list[str]:
        return [s.shipment_id for s in leased]

    def shipment(name: str, due: float | None, *, cancelled: bool = False) -> None:
        pick = PendingPick(f"pck_{name}", ORDER, "EAST", (PickedUnits(1, "KETTLE", 1),), "c")
        if cancelled:
            made = Shipment.cancelled_pick(f"shp_{name}", pick, order.partner_id, "gone", NOW)
        else:
            made = Shipment.create(f"shp_{name}", pick, order, [], DOCK, NOW)
        run(db, store.insert_shipment, made, label_due_at=due, now=at)

    # Nothing queued at all: nothing leased.
    assert run(db, store.lease_due_labels, at, 10, 60.0) == []
    assert run(db, store.lease_due_voids, at, 10, 60.0) == []
    assert run(db, store.lease_due_picks, at, 10, 60.0) == []

    shipment("later", at + 30)
    shipment("unscheduled", None)
    assert run(db, store.lease_due_labels, at, 10, 60.0) == []  # not due yet
    shipment("due", at)
    shipment("void", at, cancelled=True)
    assert ids(run(db, store.lease_due_labels, at, 10, 60.0)) == ["shp_due"]
    assert ids(run(db, store.lease_due_voids, at, 10, 60.0)) == ["shp_void"]
    # Leased: nobody else takes them until the lease runs out.
    assert ids(run(db, store.lease_due_labels, at + 59, 10, 60.0)) == ["shp_later"]
    assert ids(run(db, store.lease_due_voids, at + 59, 10, 60.0)) == []
    assert ids(run(db, store.lease_due_labels, at + 61, 10, 60.0)) == ["shp_due"]
    assert ids(run(db, store.lease_due_voids, at + 61, 10, 60.0)) == ["shp_void"]

    pick = PendingPick("pck_queued", ORDER, "EAST", (PickedUnits(1, "KETTLE", 1),), "c")
    assert run(db, store.add_pending_pick, pick, now=at + 5)
    assert run(db, store.lease_due_picks, at, 10, 60.0) == []  # not due yet
    assert run(db, store.lease_due_picks, at + 5, 10, 60.0) == [pick]
