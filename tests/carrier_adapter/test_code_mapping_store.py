"""Code mappings on a migrated carrier-adapter database, SQLite and PostgreSQL: versions per
code, the scans a code left UNKNOWN published again exactly once (in the mapping's transaction,
through the outbox), the list newest first, and another replica taking a mapping up on refresh
and normalizing the scans it left UNKNOWN meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from crossdock.carrier.v1 import tracking_pb2
from crossdock.events.v1 import carrier_events_pb2 as events
from sqlalchemy import text

from services.carrier_adapter.adapters.carriers.tables import CodeTables, load_status_table
from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store.retention import RENORMALIZED_KEEP, sweep
from services.carrier_adapter.adapters.store.tables import metadata
from services.carrier_adapter.app.code_mapping import CodeMappings
from services.carrier_adapter.app.tracking import record_tracking
from services.carrier_adapter.domain.code_mapping import MapCode, renormalized_key
from services.carrier_adapter.domain.model import TrackingStatus, WebhookBatch
from services.carrier_adapter.domain.normalize import RawScan, ScanNormalizer
from services.carrier_adapter.domain.payload_log import RetentionPolicy
from services.kit.db import Database
from services.kit.errors import InvalidArgument
from services.kit.uow import UnitsOfWork
from tests.carrier_adapter.service_support import scan

NOW = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
TRACKED = "crossdock.carrier.tracking_updated.v1"
MAPPED = "crossdock.carrier.code_mapped.v1"


class Clock:
    def monotonic(self) -> float:
        return 0.0

    def now(self) -> datetime:
        return NOW

    async def sleep(self, seconds: float) -> None:
        return None


@dataclass
class Replica:
    """One carrier-adapter replica's view: its own tables over the shared database."""

    units: UnitsOfWork
    tables: CodeTables
    mappings: CodeMappings

    async def push(self, number: str, *raw: RawScan) -> None:
        """A push normalized with this replica's live table, recorded as the service does."""
        result = ScanNormalizer(self.tables.table("sandbox")).normalize(number, raw)
        batch = WebhookBatch("sandbox", f"evt-{number}-{len(raw)}", (result,))
        await self.units.run(record_tracking, batch, NOW, "corr-push")


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    migrate(db_url)
    db = Database(db_url, service=SERVICE, event_mapper=mapper)
    yield db
    await db.close()


def replica(db: Database) -> Replica:
    units, tables = UnitsOfWork(db), CodeTables()
    return Replica(units, tables, CodeMappings(units, tables, Clock()))


def map_xsc(status: TrackingStatus, note: str = "carrier docs: XSC is delivered") -> MapCode:
    return MapCode("sandbox", "XSC", status, "ops@example.com", note)


async def outbox(db: Database, subject: str) -> list[bytes]:
    rows = await db.run(
        lambda conn: conn.execute(
            text("SELECT payload FROM outbox WHERE subject = :s ORDER BY seq"), {"s": subject}
        ).all()
    )
    return [bytes(row.payload) for row in rows]


async def updates(db: Database) -> list[events.TrackingUpdated]:
    return [events.TrackingUpdated.FromString(p) for p in await outbox(db, TRACKED)]


async def test_versions_per_code_and_idempotent_repeats(database: Database) -> None:
    one = replica(database)

    first = await one.mappings.map_code(map_xsc(TrackingStatus.DELIVERED))
    again = await one.mappings.map_code(map_xsc(TrackingStatus.DELIVERED, note="said twice"))
    changed = await one.mappings.map_code(map_xsc(TrackingStatus.IN_TRANSIT, note="misread"))
    packaged = await one.mappings.map_code(
        MapCode("sandbox", "PKP", TrackingStatus.PICKED_UP, "ops@example.com", "same")
    )

    assert (first.created, first.mapping.version, first.mapping.status) == (
        True,
        1,
        TrackingStatus.DELIVERED,
    )
    assert first.mapping.mapped_at == NOW and first.mapping.operator == "ops@example.com"
    # The same status again changes nothing: the version in force answers, its note unchanged.
    assert (again.created, again.mapping) == (False, first.mapping)
    assert (changed.created, changed.mapping.version) == (True, 2)
    # A code the packaged table maps to that status already: version 0, nothing stored.
    assert (packaged.created, packaged.mapping.version) == (False, 0)

    page, token = await one.mappings.list_mappings("sandbox", "", 1)
    assert [(m.version, m.status) for m in page] == [(2, TrackingStatus.IN_TRANSIT)]
    rest, last = await one.mappings.list_mappings("", token, 10)
    assert [(m.version, m.note) for m in rest] == [(1, "carrier docs: XSC is delivered")]
    assert last == ""
    assert await one.mappings.list_mappings("ups", "", 10) == ([], "")
    # One CarrierCodeMapped per version made, none for the repeats.
    announced = [events.CarrierCodeMapped.FromString(p) for p in await outbox(database, MAPPED)]
    assert [(e.version, e.status) for e in announced] == [
        (1, tracking_pb2.TRACKING_STATUS_DELIVERED),
        (2, tracking_pb2.TRACKING_STATUS_IN_TRANSIT),
    ]
    assert one.tables.status_of("sandbox", "XSC") is TrackingStatus.IN_TRANSIT


async def test_an_unknown_carrier_is_refused_on_its_field(database: Database) -> None:
    one = replica(database)
    with pytest.raises(InvalidArgument) as refused:
        await one.mappings.map_code(
            MapCode("acme", "XSC", TrackingStatus.DELIVERED, "ops@example.com", "n")
        )
    assert [v.field for v in refused.value.violations] == ["carrier"]
    with pytest.raises(InvalidArgument):
        await one.mappings.list_mappings("acme", "", 10)
    assert (
        await database.run(
            lambda conn: conn.execute(text("SELECT count(*) FROM code_mappings")).scalar_one()
        )
        == 0
    )


async def test_mapping_publishes_the_scans_left_unknown_once(database: Database) -> None:
    one = replica(database)
    await one.push("SBX1", scan("PKP", 0), scan("XSC", 30))
    await one.push("SBX2", scan("XSC", 10))
    (left_1, _) = await updates(database)
    assert left_1.events[1].status == tracking_pb2.TRACKING_STATUS_UNKNOWN

    mapped = await one.mappings.map_code(map_xsc(TrackingStatus.DELIVERED))
    repeat = await one.mappings.map_code(map_xsc(TrackingStatus.DELIVERED))

    assert (mapped.renormalized_scans, repeat.renormalized_scans) == (2, 0)
    published = (await updates(database))[2:]
    assert sorted(u.tracking_number for u in published) == ["SBX1", "SBX2"]
    by_number = {u.tracking_number: u for u in published}
    (again,) = by_number["SBX1"].events
    assert again.status == tracking_pb2.TRACKING_STATUS_DELIVERED
    assert again.carrier_status_code == "XSC"
    assert again.occur_time == left_1.events[1].occur_time  # when the carrier scanned it
    assert again.dedupe_key == renormalized_key(left_1.events[1].dedupe_key, 1)
    (announced,) = [events.CarrierCodeMapped.FromString(p) for p in await outbox(database, MAPPED)]
    assert (announced.renormalized_scans, announced.carrier_status_code) == (2, "XSC")

    # A new version does not publish those scans again: they are no longer UNKNOWN.
    remapped = await one.mappings.map_code(map_xsc(TrackingStatus.OUT_FOR_DELIVERY))
    assert (remapped.mapping.version, remapped.renormalized_scans) == (2, 0)
    assert len(await updates(database)) == 4

    # A scan arriving now is normalized with the mapping at once: nothing is kept for later.
    await one.push("SBX3", scan("XSC", 40))
    (fresh,) = (await updates(database))[4].events
    assert fresh.status == tracking_pb2.TRACKING_STATUS_OUT_FOR_DELIVERY
    assert len(await outbox(database, "crossdock.carrier.code_unmapped.v1")) == 2


async def test_another_replica_takes_the_mapping_up_on_refresh(database: Database) -> None:
    here, there = replica(database), replica(database)
    await there.mappings.refresh()  # started before the mapping: no operator mappings yet
    await here.mappings.map_code(map_xsc(TrackingStatus.DELIVERED))

    # Until it refreshes, the other replica still leaves XSC UNKNOWN (and keeps the scan)...
    await there.push("SBX9", scan("XSC", 50))
    assert (await updates(database))[-1].events[0].status == tracking_pb2.TRACKING_STATUS_UNKNOWN

    # ...its refresh lays the mapping over its table and publishes that scan normalized, once.
    assert await there.mappings.refresh() == 1
    assert await there.mappings.refresh() == 0
    assert await here.mappings.refresh() == 0
    last = (await updates(database))[-1]
    assert (last.tracking_number, last.events[0].status) == (
        "SBX9",
        tracking_pb2.TRACKING_STATUS_DELIVERED,
    )
    assert there.tables.status_of("sandbox", "XSC") is TrackingStatus.DELIVERED
    await there.push("SBX9", scan("XSC", 60))
    assert (await updates(database))[-1].events[0].status == tracking_pb2.TRACKING_STATUS_DELIVERED


async def test_the_packaged_table_stays_the_default(database: Database) -> None:
    one = replica(database)
    await one.mappings.map_code(
        MapCode("sandbox", "PKP", TrackingStatus.IN_TRANSIT, "ops@example.com", "override")
    )
    assert one.tables.status_of("sandbox", "PKP") is TrackingStatus.IN_TRANSIT
    assert one.tables.packaged_status("sandbox", "PKP") is TrackingStatus.PICKED_UP
    assert load_status_table("sandbox").status_of("PKP") is TrackingStatus.PICKED_UP
    # Other codes and other carriers are untouched by the overlay.
    assert one.tables.status_of("sandbox", "DLV") is TrackingStatus.DELIVERED
    assert one.tables.status_of("ups", "PU") is TrackingStatus.PICKED_UP


async def test_the_migration_matches_the_tables_on_this_backend(database: Database) -> None:
    with database.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in drift if "code_mappings" in repr(d) or "unmapped_scans" in repr(d)]
    assert ours == []


async def test_the_sweep_drops_scans_published_again_long_ago_and_keeps_the_pending(
    database: Database,
) -> None:
    one = replica(database)
    await one.push("SBX1", scan("XSC", 10), scan("QQQ", 20))
    await one.mappings.map_code(map_xsc(TrackingStatus.DELIVERED))

    async def kept() -> list[tuple[str, int | None]]:
        rows = await database.run(
            lambda conn: conn.execute(
                text("SELECT carrier_status_code, mapped_version FROM unmapped_scans")
            ).all()
        )
        return sorted((row[0], row[1]) for row in rows)

    await database.run(sweep, RetentionPolicy(), NOW + RENORMALIZED_KEEP / 2, timedelta(days=1))
    assert await kept() == [("QQQ", None), ("XSC", 1)]
    later = NOW + RENORMALIZED_KEEP + timedelta(hours=1)
    await database.run(sweep, RetentionPolicy(), later, timedelta(days=1))
    assert await kept() == [("QQQ", None)]  # QQQ is still unmapped: it waits for its mapping
