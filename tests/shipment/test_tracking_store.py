"""Carrier scans applied to shipment's store, on SQLite and PostgreSQL: each distinct scan is
stored once whichever update carries it (again, or twice in one update), a late scan joins the
timeline without moving the shipment back, and a number whose shipment is unknown or gone is
refused; the first shipment to claim a tracking number keeps it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest
from sqlalchemy import Connection, text

from services.kit.db import Database
from services.kit.uow import UnitOfWork
from services.kit.values import Address, Money
from services.shipment.adapters.contracts import mapper
from services.shipment.adapters.store import migrate, scans
from services.shipment.adapters.store import shipments as store
from services.shipment.app import shipments
from services.shipment.app.errors import TrackingNumberUnknown
from services.shipment.app.tracking import TrackingUpdate, apply_tracking
from services.shipment.domain.model import ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import Label, OrderRef, PendingPick, ScanReport, Shipment

T = TypeVar("T")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SHIPMENT = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
NUMBER = "1Z999AA10123456784"
HOME = Address(
    name="Ada", lines=("1 Rodeo Dr",), city="Beverly Hills", postal_code="90210", country_code="US"
)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="shipment", event_mapper=mapper)
    yield database
    database.engine.dispose()


def run(db: Database, fn: Callable[..., T], *args: object) -> T:
    return db.run_sync(lambda conn: fn(UnitOfWork.of(conn), *args))


def _manifest(uow: UnitOfWork) -> None:
    pick = PendingPick("pck_1", "ord_1", "EAST", (PickedUnits(1, "KETTLE", 2),), "corr-1")
    order = OrderRef("ord_1", "ptn_1", 2, HOME)
    shipment = Shipment.create(SHIPMENT, pick, order, [], HOME, NOW)
    store.insert_shipment(uow.conn, shipment, label_due_at=NOW.timestamp(), now=NOW.timestamp())
    label = Label("lbl_1", "sandbox", NUMBER, ("1Z999AA10123456785",))
    shipments.manifest(uow, SHIPMENT, label, NOW)


def scan(status: TrackingStatus, hours: int, key: str) -> ScanReport:
    return ScanReport(status, NOW + timedelta(hours=hours), key.encode(), dedupe_key=key)


def track(db: Database, *reports: ScanReport, charge: Money | None = None) -> int:
    update = TrackingUpdate("sandbox", NUMBER, reports, charge)
    return run(db, apply_tracking, update, NOW + timedelta(days=2))


def published(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT subject FROM outbox")).all()
    return [str(row.subject) for row in rows]


def test_each_scan_is_stored_once_and_a_late_one_never_moves_the_shipment_back(
    db: Database,
) -> None:
    run(db, _manifest)
    pickup = scan(TrackingStatus.PICKED_UP, 1, "pkp")
    transit = scan(TrackingStatus.IN_TRANSIT, 3, "dep")
    late = scan(TrackingStatus.IN_TRANSIT, 2, "arr")
    delivered = scan(TrackingStatus.DELIVERED, 9, "dlv")

    assert track(db, pickup, pickup) == 1  # the same scan twice in one update
    assert track(db, pickup, transit) == 1
    saved = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    assert saved is not None
    assert track(db, transit) == 0  # resent: nothing new, nothing written
    unchanged = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    assert unchanged is not None and unchanged.version == saved.version

    charge = Money("USD", Decimal("13.50"))
    assert track(db, delivered, charge=charge) == 1
    assert track(db, late) == 1
    shipment = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    assert shipment is not None
    assert shipment.status is ShipmentStatus.DELIVERED
    assert shipment.last_tracking_status is TrackingStatus.DELIVERED
    assert shipment.final_charge == charge
    timeline = db.run_sync(lambda conn: scans.list_scans(conn, SHIPMENT))
    assert timeline == [b"pkp", b"arr", b"dep", b"dlv"]
    assert sorted(db.run_sync(published)) == [
        "crossdock.shipment.delivered.v1",
        "crossdock.shipment.manifested.v1",
        "crossdock.shipment.picked_up.v1",
    ]


def test_scans_for_an_unknown_number_or_a_vanished_shipment_are_refused(db: Database) -> None:
    with pytest.raises(TrackingNumberUnknown):
        track(db, scan(TrackingStatus.PICKED_UP, 1, "pkp"))
    db.run_sync(lambda conn: scans.add_tracking_numbers(conn, "sandbox", [NUMBER], "shp_gone"))
    with pytest.raises(LookupError, match="shp_gone vanished"):
        track(db, scan(TrackingStatus.PICKED_UP, 1, "pkp"))

    # The number stays with the first shipment that claimed it.
    db.run_sync(lambda conn: scans.add_tracking_numbers(conn, "sandbox", [NUMBER], SHIPMENT))
    found = db.run_sync(lambda conn: scans.tracked_shipment(conn, "sandbox", NUMBER))
    assert found == ("shp_gone", None)
    assert db.run_sync(lambda conn: scans.list_scans(conn, "shp_gone")) == []
