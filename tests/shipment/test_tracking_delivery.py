"""A delivery taken on the shipment's timeline (without decoding the shipment), on SQLite and
PostgreSQL: the stored shipment (document byte for byte, status, progress, final charge,
version) and the published milestones (subject, payload byte for byte, correlation id) are
those of the whole shipment recording the same updates one by one (Shipment.record_scan,
record_final_charge, touch), whether the updates come in one batch or one at a time; for
outbound shipments, return parcels and documents stored before shipment kinds existed."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crossdock.shipment.v1 import shipment_pb2
from sqlalchemy import text

from services.kit import events as ev
from services.kit.db import Database
from services.kit.uow import UnitOfWork
from services.kit.values import Address, Money
from services.shipment.adapters.contracts import mapper
from services.shipment.adapters.store import codecs, migrate
from services.shipment.adapters.store import shipments as store
from services.shipment.app import shipments
from services.shipment.app.tracking import TrackingBatch, TrackingUpdate, apply_tracking
from services.shipment.domain.model import ServiceLevel, ShipmentStatus, TrackingStatus
from services.shipment.domain.packing import Box, PickedUnits
from services.shipment.domain.shipment import (
    Label,
    OrderRef,
    Package,
    PendingPick,
    Rate,
    Shipment,
)
from services.shipment.domain.tracking import ScanReport

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SHIPMENT = "shp_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
NUMBER = "1Z999AA10123456784"
HOME = Address(
    name="Ada", lines=("1 Rodeo Dr", "Apt 4"), city="Beverly Hills", region="CA",
    postal_code="90210", country_code="US",
)  # fmt: skip
DOCK = Address(
    name="East DC", lines=("100 Dock St",), city="Newark", postal_code="07102", country_code="US"
)
QUOTE = Money("USD", Decimal("12.40"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="shipment", event_mapper=mapper)
    yield database
    database.engine.dispose()


def _manifest(uow: UnitOfWork, kind: str) -> None:
    """A shipment with packages, addresses and a rate, manifested; `legacy`: an outbound one
    whose document was stored before kinds existed (no kind)."""
    units = (PickedUnits(1, "KETTLE", 2), PickedUnits(2, "ANVIL", 1, "LOT-7"))
    order = OrderRef("ord_1", "ptn_1", int(ServiceLevel.STANDARD), HOME)
    packages = [
        Package.of_box(f"{SHIPMENT}-1", Box(units[:1], 3.0, 30.0, 20.0, 15.0)),
        Package.of_box(f"{SHIPMENT}-2", Box(units[1:], 12.5, 40.0, 30.0, 20.0)),
    ]
    if kind == "return":
        pick = PendingPick("rma_1", "ord_1", "EAST", units, "corr-1", return_id="rma_1")
        shipment = Shipment.create_return(
            SHIPMENT, pick, order, packages, DOCK, ServiceLevel.STANDARD, NOW
        )
    else:
        pick = PendingPick("pck_1", "ord_1", "EAST", units, "corr-1")
        shipment = Shipment.create(SHIPMENT, pick, order, packages, DOCK, NOW)
    store.insert_shipment(uow.conn, shipment, label_due_at=NOW.timestamp(), now=NOW.timestamp())
    rate = Rate("rate_1", "sandbox", ServiceLevel.STANDARD, QUOTE, "acct_1", "GROUND", "Ground", 2)
    label = Label("lbl_1", "sandbox", NUMBER, (NUMBER + "1", NUMBER + "2"), QUOTE, rate)
    shipments.manifest(uow, SHIPMENT, label, NOW)
    if kind == "legacy":
        document = uow.conn.execute(text("SELECT document FROM shipments")).scalar_one()
        message = shipment_pb2.Shipment.FromString(document)
        message.ClearField("kind")
        uow.conn.execute(
            text("UPDATE shipments SET document = :document"),
            {"document": message.SerializeToString()},
        )


def _scan(status: TrackingStatus, hours: float, key: str) -> ScanReport:
    return ScanReport(
        status,
        NOW + timedelta(hours=hours),
        key.encode(),
        description="front porch",
        signed_by="LOVELACE" if status is TrackingStatus.DELIVERED else "",
        dedupe_key=key,
    )


def _updates() -> list[tuple[TrackingUpdate, datetime]]:
    """A package's plain scan, out for delivery and the delivery with its final charge in one
    update, a late scan, then a corrected final charge alone."""
    at = [NOW + timedelta(days=2, minutes=minute) for minute in range(4)]
    corrected = Money("USD", Decimal("17.15"))
    arriving = (
        _scan(TrackingStatus.OUT_FOR_DELIVERY, 8, "b"),
        _scan(TrackingStatus.DELIVERED, 9, "c"),
    )
    return [
        (
            TrackingUpdate("sandbox", NUMBER + "2", (_scan(TrackingStatus.IN_TRANSIT, 2, "a"),)),
            at[0],
        ),
        (TrackingUpdate("sandbox", NUMBER, arriving, QUOTE), at[1]),
        (TrackingUpdate("sandbox", NUMBER, (_scan(TrackingStatus.IN_TRANSIT, 10, "d"),)), at[2]),
        (TrackingUpdate("sandbox", NUMBER, (), corrected), at[3]),
    ]


def _as_the_whole_shipment_would(before: Shipment) -> tuple[Shipment, list[object]]:
    """The shipment and its events after the updates, recorded on the whole aggregate."""
    shipment = copy.deepcopy(before)
    for update, now in _updates():
        for report in update.scans:
            shipment.record_scan(report, update.final_charge)
        if update.final_charge is not None:
            shipment.record_final_charge(update.final_charge)
        shipment.touch(now)
    return shipment, shipment.pull_events()


@pytest.mark.parametrize("batched", [True, False], ids=["one batch", "one by one"])
@pytest.mark.parametrize("kind", ["outbound", "return", "legacy"])
def test_a_delivery_is_stored_and_published_as_the_whole_shipment_would(
    db: Database, kind: str, batched: bool
) -> None:
    db.run_sync(lambda conn: _manifest(UnitOfWork.of(conn), kind))
    before = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    assert before is not None
    expected, events = _as_the_whole_shipment_would(before)
    published_before = db.run_sync(
        lambda conn: conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    )

    if batched:

        def in_one_batch(uow: UnitOfWork) -> list[int]:
            batch = TrackingBatch(uow)
            fresh = batch.apply_all(_updates())
            batch.save()
            return fresh

        fresh = db.run_sync(lambda conn: in_one_batch(UnitOfWork.of(conn)))
    else:
        fresh = [
            db.run_sync(lambda conn, u=update, n=now: apply_tracking(UnitOfWork.of(conn), u, n))
            for update, now in _updates()
        ]
    assert fresh == [1, 2, 1, 0]

    row = db.run_sync(
        lambda conn: conn.execute(
            text("SELECT status, document, progress, final_charge, version FROM shipments")
        ).one()
    )
    assert bytes(row.document) == codecs.shipment_document(expected)
    assert row.status == int(expected.status) == int(ShipmentStatus.DELIVERED)
    assert codecs.parse_progress(row.progress) == expected.progress
    assert codecs.parse_final_charge(row.final_charge) == expected.final_charge
    assert row.version == before.version + (1 if batched else 4)
    rows = db.run_sync(
        lambda conn: conn.execute(
            text("SELECT subject, payload, headers FROM outbox ORDER BY seq")
        ).all()
    )[published_before:]
    messages = [mapper.to_message(event)[0] for event in events]
    assert [(r.subject, bytes(r.payload)) for r in rows] == [
        (ev.event_spec(type(message)).subject, message.SerializeToString()) for message in messages
    ]
    assert rows[-1].subject.rsplit(".", 2)[-2] == (
        "return_parcel_delivered" if kind == "return" else "delivered"
    )
    assert {json.loads(r.headers)[ev.CORRELATION_ID] for r in rows} == {"corr-1"}
