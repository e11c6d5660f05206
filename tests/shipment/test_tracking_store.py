"""Carrier scans applied to shipment's store, on SQLite and PostgreSQL: each distinct scan is
stored once whichever update carries it (again, or twice in one update), a late scan joins the
timeline without moving the shipment back, and a number whose shipment is unknown or gone is
refused; the first shipment to claim a tracking number keeps it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest
from sqlalchemy import Connection, text

from services.kit import events as ev
from services.kit.db import Database
from services.kit.errors import Conflict
from services.kit.uow import UnitOfWork
from services.kit.values import Address, Money
from services.shipment.adapters.contracts import mapper, shipment_to_proto
from services.shipment.adapters.store import codecs, migrate, scans
from services.shipment.adapters.store import shipments as store
from services.shipment.app import shipments
from services.shipment.app.errors import TrackingNumberUnknown
from services.shipment.app.tracking import TrackingBatch, TrackingUpdate, apply_tracking
from services.shipment.domain.model import (
    IncidentReason,
    ServiceLevel,
    ShipmentKind,
    ShipmentStatus,
    TrackingStatus,
)
from services.shipment.domain.packing import PickedUnits
from services.shipment.domain.shipment import Label, OrderRef, PendingPick, ScanReport, Shipment
from services.shipment.domain.tracking import Progress

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


def test_a_scan_that_moves_nothing_shows_in_reads_as_if_the_shipment_had_been_rewritten(
    db: Database,
) -> None:
    run(db, _manifest)
    track(db, scan(TrackingStatus.PICKED_UP, 1, "pkp"), scan(TrackingStatus.IN_TRANSIT, 2, "dep"))
    before = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    events_before = db.run_sync(published)
    assert before is not None and before.status is ShipmentStatus.IN_TRANSIT

    arrived = scan(TrackingStatus.IN_TRANSIT, 4, "arr")
    hold = scan(TrackingStatus.DELIVERY_DELAYED, 5, "dly")
    later = NOW + timedelta(days=3)
    assert run(db, apply_tracking, TrackingUpdate("sandbox", NUMBER, (arrived, hold)), later) == 2

    # What the whole-shipment path writes: the scans recorded, the shipment touched.
    expected = copy.deepcopy(before)
    for report in (arrived, hold):
        expected.record_scan(report, None)
    expected.touch(later)
    after = db.run_sync(lambda conn: store.get_shipment(conn, SHIPMENT))
    assert after is not None
    assert shipment_to_proto(after) == shipment_to_proto(expected)
    assert after.progress == expected.progress
    assert after.progress.latest_scan_at == hold.occur_time
    assert after.last_tracking_status is TrackingStatus.DELIVERY_DELAYED
    assert after.update_time == later
    assert after.version == before.version + 1
    assert db.run_sync(published) == events_before  # no milestone, no event

    # A worker still holding the shipment as read before the scan cannot write over it.
    with pytest.raises(Conflict):
        db.run_sync(lambda conn: store.save_shipment(conn, before, now=NOW.timestamp()))


def _manifest_as(uow: UnitOfWork, shipment_id: str, number: str) -> None:
    pick = PendingPick(f"pck_{shipment_id}", "ord_1", "EAST", (PickedUnits(1, "KETTLE", 2),), "c")
    order = OrderRef("ord_1", "ptn_1", 2, HOME)
    shipment = Shipment.create(shipment_id, pick, order, [], HOME, NOW)
    store.insert_shipment(uow.conn, shipment, label_due_at=NOW.timestamp(), now=NOW.timestamp())
    label = Label(f"lbl_{shipment_id}", "sandbox", number, (number + "P",))
    shipments.manifest(uow, shipment_id, label, NOW)


Step = tuple[str, TrackingStatus, float, Money | None]  # number suffix ("P": a package's)
CHARGE = Money("USD", Decimal("7.25"))
FULL_JOURNEY: list[Step] = [
    ("", TrackingStatus.PENDING, 0, None),
    ("P", TrackingStatus.PICKED_UP, 1, None),
    ("", TrackingStatus.IN_TRANSIT, 2, None),
    ("P", TrackingStatus.IN_TRANSIT, 3, None),
    ("", TrackingStatus.DELIVERY_DELAYED, 4, None),
    ("P", TrackingStatus.DELIVERED, 9, CHARGE),
    ("", TrackingStatus.IN_TRANSIT, 5, None),  # late
]
# Plain scans first, then a delivery whose event carries the whole shipment as they left it.
PLAIN_THEN_DELIVERED: list[Step] = [
    ("", TrackingStatus.PENDING, 0, None),
    ("P", TrackingStatus.DELIVERY_DELAYED, 12, None),  # stays the latest scan
    ("P", TrackingStatus.DELIVERED, 9, CHARGE),
    ("", TrackingStatus.IN_TRANSIT, 5, None),  # late
]


@pytest.mark.parametrize("steps", [FULL_JOURNEY, PLAIN_THEN_DELIVERED])
def test_a_batch_of_updates_ends_as_the_same_updates_applied_one_by_one(
    db: Database, steps: list[Step]
) -> None:
    """Several updates of one shipment in one batch (under its master and its package number,
    plain scans, milestones, a final charge) are read and written once, with the outcome, the
    timeline and the events (in order) of the updates applied one at a time."""
    run(db, _manifest_as, "shp_alone", "1ZALONE")
    run(db, _manifest_as, "shp_batch", "1ZBATCH")

    def update(number: str, step: int) -> TrackingUpdate:
        suffix, status, hours, charge = steps[step]
        key = f"{number}-{step}"
        when = NOW + timedelta(hours=hours)
        report = ScanReport(status, when, key.encode(), dedupe_key=key)
        return TrackingUpdate("sandbox", number + suffix, (report,), charge)

    def now(step: int) -> datetime:
        return NOW + timedelta(days=2, minutes=step)

    for step in range(len(steps)):
        assert run(db, apply_tracking, update("1ZALONE", step), now(step)) == 1

    def in_one_batch(uow: UnitOfWork) -> list[int]:
        batch = TrackingBatch(uow)
        fresh = [batch.apply(update("1ZBATCH", step), now(step)) for step in range(len(steps))]
        batch.save()
        return fresh

    assert db.run_sync(lambda conn: in_one_batch(UnitOfWork.of(conn))) == [1] * len(steps)

    def outcome(conn: Connection, shipment_id: str) -> tuple[object, ...]:
        shipment = store.get_shipment(conn, shipment_id)
        assert shipment is not None
        message = shipment_to_proto(shipment)
        rows = conn.execute(
            text("SELECT subject, payload FROM outbox WHERE aggregate_id = :id ORDER BY seq"),
            {"id": shipment_id},
        ).all()
        return (
            message.status,
            message.last_tracking_status,
            message.update_time,
            message.proof_of_delivery,
            shipment.progress,
            shipment.final_charge,
            [row.subject for row in rows],
            # The events' payloads, in the other shipment's names (as long as these).
            [
                bytes(row.payload).replace(b"BATCH", b"ALONE").replace(b"batch", b"alone")
                for row in rows
            ],
            len(scans.list_scans(conn, shipment_id)),
        )

    alone = db.run_sync(lambda conn: outcome(conn, "shp_alone"))
    batched = db.run_sync(lambda conn: outcome(conn, "shp_batch"))
    assert batched == alone
    assert alone[0] == ShipmentStatus.DELIVERED
    assert alone[6][-1] == "crossdock.shipment.delivered.v1"


def _state(conn: Connection, shipment_id: str) -> tuple[object, ...]:
    """What scans change on a shipment: its message, progress and version, its events (in
    order) and its timeline; the batch's shipments and numbers spelled as the others'."""
    shipment = store.get_shipment(conn, shipment_id)
    assert shipment is not None
    rows = conn.execute(
        text("SELECT subject, payload FROM outbox WHERE aggregate_id = :id ORDER BY seq"),
        {"id": shipment_id},
    ).all()

    def renamed(data: bytes) -> bytes:
        return data.replace(b"shp_all_", b"shp_one_").replace(b"1ZALL", b"1ZONE")

    return (
        renamed(shipment_to_proto(shipment).SerializeToString()),
        shipment.progress,
        shipment.version,
        [row.subject for row in rows],
        [renamed(bytes(row.payload)) for row in rows],
        scans.list_scans(conn, shipment_id),
    )


def test_a_batch_over_many_shipments_reads_and_stores_as_updates_one_by_one(
    db: Database,
) -> None:
    """Updates of many shipments (more numbers and scans than one statement takes), with a scan
    resent in the same batch and one sent under a package's number, end as the same updates
    applied one at a time."""
    count = 110  # numbers per batch: over statements.MAX_ROWS_PER_STATEMENT

    def manifest_all(uow: UnitOfWork) -> None:
        for index in range(count):
            _manifest_as(uow, f"shp_one_{index:03d}", f"1ZONE{index:03d}")
            _manifest_as(uow, f"shp_all_{index:03d}", f"1ZALL{index:03d}")

    db.run_sync(lambda conn: manifest_all(UnitOfWork.of(conn)))

    def updates(prefix: str) -> list[tuple[TrackingUpdate, datetime]]:
        batch = []
        for index in range(count):
            number = f"{prefix}{index:03d}"
            # Same key for both prefixes: shipment's dedupe is per shipment.
            pickup = scan(TrackingStatus.PICKED_UP, 1, f"pkp{index}")
            transit = scan(TrackingStatus.IN_TRANSIT, 2, f"dep{index}")
            when = NOW + timedelta(days=1, minutes=index)
            batch.append((TrackingUpdate("sandbox", number, (pickup, pickup, transit)), when))
            if index % 3 == 0:  # resent: nothing new
                batch.append((TrackingUpdate("sandbox", number, (transit,)), when))
            if index % 3 == 1:  # a later plain scan under the package's number
                late = scan(TrackingStatus.IN_TRANSIT, 3, f"arr{index}")
                batch.append((TrackingUpdate("sandbox", number + "P", (late,)), when))
        return batch

    one_by_one = [run(db, apply_tracking, update, when) for update, when in updates("1ZONE")]

    def in_one_batch(uow: UnitOfWork) -> list[int]:
        batch = TrackingBatch(uow)
        fresh = batch.apply_all(updates("1ZALL"))
        batch.save()
        return fresh

    assert db.run_sync(lambda conn: in_one_batch(UnitOfWork.of(conn))) == one_by_one
    assert sum(one_by_one) == count * 2 + len(range(1, count, 3))
    for index in (0, 1, 2, count - 1):
        alone = db.run_sync(_state, f"shp_one_{index:03d}")
        batched = db.run_sync(_state, f"shp_all_{index:03d}")
        assert batched[:2] == alone[:2]
        assert batched[3:] == alone[3:]
        # One write per shipment for the batch, one per changing update one by one.
        assert batched[2] == 3  # inserted, manifested, then the batch
        assert alone[2] == 3 + (index % 3 == 1)


def test_a_batch_with_an_unknown_number_stores_nothing(db: Database) -> None:
    run(db, _manifest)
    known = TrackingUpdate("sandbox", NUMBER, (scan(TrackingStatus.PICKED_UP, 1, "pkp"),))
    stranger = TrackingUpdate("sandbox", "1ZUNKNOWN", (scan(TrackingStatus.PICKED_UP, 1, "x"),))

    def in_one_batch(uow: UnitOfWork) -> None:
        TrackingBatch(uow).apply_all([(known, NOW), (stranger, NOW)])

    with pytest.raises(TrackingNumberUnknown, match="1ZUNKNOWN"):
        db.run_sync(lambda conn: in_one_batch(UnitOfWork.of(conn)))
    assert db.run_sync(lambda conn: scans.list_scans(conn, SHIPMENT)) == []
    assert track(db, scan(TrackingStatus.PICKED_UP, 1, "pkp")) == 1


def test_a_batch_whose_shipment_changed_meanwhile_writes_none_of_them(db: Database) -> None:
    """The timelines of a batch are written together, each under its version check: one
    shipment changed since the batch read it fails the whole batch with Conflict."""
    run(db, _manifest_as, "shp_first", "1ZFIRST")
    run(db, _manifest_as, "shp_second", "1ZSECOND")
    before = db.run_sync(lambda conn: store.get_shipment(conn, "shp_first"))
    assert before is not None

    def race(uow: UnitOfWork) -> None:
        batch = TrackingBatch(uow)
        plain = [
            (TrackingUpdate("sandbox", number, (scan(TrackingStatus.PENDING, 1, number),)), NOW)
            for number in ("1ZFIRST", "1ZSECOND")
        ]
        assert batch.apply_all(plain) == [1, 1]
        # Another writer saves the second shipment between the batch's read and its write.
        uow.conn.execute(
            text("UPDATE shipments SET version = version + 1 WHERE shipment_id = 'shp_second'")
        )
        batch.save()

    with pytest.raises(Conflict, match="shp_second"):
        db.run_sync(lambda conn: race(UnitOfWork.of(conn)))
    after = db.run_sync(lambda conn: store.get_shipment(conn, "shp_first"))
    assert after is not None and after.version == before.version


def _manifest_return(uow: UnitOfWork, shipment_id: str, number: str) -> None:
    units = PendingPick(
        "rma_1", "ord_1", "EAST", (PickedUnits(1, "KETTLE", 2),), "c", return_id="rma_1"
    )
    order = OrderRef("ord_1", "ptn_1", 2, HOME)
    parcel = Shipment.create_return(shipment_id, units, order, [], HOME, ServiceLevel.STANDARD, NOW)
    store.insert_shipment(uow.conn, parcel, label_due_at=NOW.timestamp(), now=NOW.timestamp())
    label = Label(f"lbl_{shipment_id}", "sandbox", number, (number + "P",))
    shipments.manifest(uow, shipment_id, label, NOW)


@pytest.mark.parametrize("kind", [ShipmentKind.OUTBOUND, ShipmentKind.RETURN])
def test_scans_that_move_the_status_or_announce_are_stored_and_published_as_the_shipment_would(
    db: Database, kind: ShipmentKind
) -> None:
    """Pickup, transit, an exception and out for delivery are taken without decoding the
    shipment; each leaves the stored shipment (document, status column, progress, version) and
    publishes the events (subject, payload, correlation id) that the whole shipment recording
    the scan would."""
    manifest = _manifest_as if kind is ShipmentKind.OUTBOUND else _manifest_return
    run(db, manifest, "shp_moves", "1ZMOVES")
    steps = [
        (TrackingStatus.PICKED_UP, 1, "1ZMOVES"),
        (TrackingStatus.IN_TRANSIT, 2, "1ZMOVESP"),  # a package's number
        (TrackingStatus.DELIVERY_FAILED, 6, "1ZMOVES"),
        (TrackingStatus.OUT_FOR_DELIVERY, 8, "1ZMOVES"),  # also resolves the exception
    ]
    for index, (status, hours, number) in enumerate(steps):
        before = db.run_sync(lambda conn: store.get_shipment(conn, "shp_moves"))
        assert before is not None
        report = ScanReport(
            status,
            NOW + timedelta(hours=hours),
            f"scan-{index}".encode(),
            incident_reason=IncidentReason.RECIPIENT_ABSENT,
            description="nobody home",
            dedupe_key=f"scan-{index}",
        )
        later = NOW + timedelta(days=2, minutes=index)
        expected = copy.deepcopy(before)
        expected.record_scan(report, None)
        expected.touch(later)
        messages = [mapper.to_message(event)[0] for event in expected.pull_events()]
        published_before = len(db.run_sync(published))

        assert run(db, apply_tracking, TrackingUpdate("sandbox", number, (report,)), later) == 1

        after = db.run_sync(lambda conn: store.get_shipment(conn, "shp_moves"))
        assert after is not None
        assert shipment_to_proto(after) == shipment_to_proto(expected), status
        assert after.progress == expected.progress
        assert after.version == before.version + 1
        column = db.run_sync(
            lambda conn: conn.execute(
                text("SELECT status FROM shipments WHERE shipment_id = 'shp_moves'")
            ).scalar_one()
        )
        assert column == int(expected.status)
        rows = db.run_sync(
            lambda conn: conn.execute(
                text("SELECT subject, payload, headers FROM outbox ORDER BY seq")
            ).all()
        )[published_before:]
        assert [(row.subject, bytes(row.payload)) for row in rows] == [
            (ev.event_spec(type(message)).subject, message.SerializeToString())
            for message in messages
        ]
        for row in rows:
            assert json.loads(row.headers)[ev.CORRELATION_ID] == before.correlation_id
    final = db.run_sync(lambda conn: store.get_shipment(conn, "shp_moves"))
    assert final is not None and final.status is ShipmentStatus.OUT_FOR_DELIVERY
    subjects = [subject.rsplit(".", 2)[-2] for subject in db.run_sync(published)]
    if kind is ShipmentKind.OUTBOUND:
        assert subjects[1:] == ["picked_up", "delivery_exception", "out_for_delivery"]
    else:
        assert subjects[1:] == ["return_parcel_picked_up", "return_parcel_exception"]


def test_progress_reads_the_same_whichever_json_encoder_wrote_it() -> None:
    """Rows written before progress was encoded with orjson hold the stdlib's spelling."""
    progress = Progress(
        ShipmentStatus.EXCEPTION,
        ShipmentStatus.IN_TRANSIT,
        NOW,
        NOW + timedelta(hours=5, microseconds=250),
        NOW + timedelta(hours=6),
        TrackingStatus.DELIVERY_FAILED,
    )
    stdlib = json.dumps(
        {
            "status": 7,
            "reached": 4,
            "reached_at": NOW.timestamp(),
            "exception_at": (NOW + timedelta(hours=5, microseconds=250)).timestamp(),
            "latest_scan_at": (NOW + timedelta(hours=6)).timestamp(),
            "latest_tracking_status": 6,
        }
    )
    assert codecs.parse_progress(stdlib) == progress
    assert codecs.parse_progress(codecs.progress_json(progress)) == progress
    assert json.loads(codecs.progress_json(progress)) == json.loads(stdlib)
