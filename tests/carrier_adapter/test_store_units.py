"""carrier-adapter's store on SQLite and PostgreSQL: scan dedupe, the label claim and its
completion, each with as few statements as it can, deciding exactly what they decided before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event

from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store import labels as store
from services.carrier_adapter.adapters.store.labels import ClaimOutcome, LabelStatus
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.adapters.store.scans import keep_unseen, keep_unseen_groups
from services.carrier_adapter.domain.model import (
    BookedLabel,
    LabelFormat,
    RateQuote,
    ServiceLevel,
    TrackingScan,
    TrackingStatus,
)
from services.kit.db import Database
from services.kit.values import Money

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
QUOTE = StoredQuote(
    "rte_1",
    RateQuote("sandbox", "sandbox", "GROUND", "Ground", ServiceLevel.STANDARD, Money.of(9, "USD")),
    NOW + timedelta(days=1),
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    migrate(db_url)
    database = Database(db_url, service=SERVICE, event_mapper=mapper)
    yield database
    await database.close()


def scan(dedupe_key: str) -> TrackingScan:
    return TrackingScan(
        tracking_number="SBX1",
        carrier="sandbox",
        status=TrackingStatus.IN_TRANSIT,
        incident_reason=None,
        carrier_status_code="ITR",
        carrier_incident_code="",
        description="in transit",
        occurred_at=NOW,
        location=None,
        signed_by="",
        dedupe_key=dedupe_key,
    )


def counting(db: Database) -> list[str]:
    """The statements the database runs from now on (transaction control left out).

    Seen at the driver, not through SQLAlchemy's events: the store's prepared statements
    (services.kit.statements) run on the raw DBAPI cursor. SQLite traces every statement it runs;
    on PostgreSQL the connection's psycopg cursor class notes what it is asked to execute.
    """
    seen: list[str] = []

    def record(sql: object) -> None:
        statement = str(sql).lstrip().split()[0].upper()
        if statement not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"):
            seen.append(statement)

    def watch(conn: Connection) -> None:
        # Every unit of work begins on the worker's long-lived connection: watch it from there.
        driver: Any = conn.connection.driver_connection
        if db.is_sqlite:
            driver.set_trace_callback(record)
        elif not getattr(driver.cursor_factory, "records_statements", False):
            driver.cursor_factory = _recording(driver.cursor_factory, record)

    event.listen(db.engine, "begin", watch)
    return seen


def _recording(cursor_class: Any, record: Callable[[object], None]) -> Any:
    """A subclass of the psycopg cursor class `cursor_class` that records each statement."""

    class Recording(cursor_class):  # type: ignore[misc, valid-type]
        records_statements = True

        def execute(self, query: object, *args: Any, **kwargs: Any) -> Any:
            record(query)
            return super().execute(query, *args, **kwargs)

        def executemany(self, query: object, *args: Any, **kwargs: Any) -> Any:
            record(query)
            return super().executemany(query, *args, **kwargs)

    return Recording


async def test_a_push_keeps_each_new_scan_once_in_one_statement(db: Database) -> None:
    def keep(*keys: str) -> Callable[[Connection], list[str]]:
        return lambda conn: [s.dedupe_key for s in keep_unseen(conn, [scan(k) for k in keys], NOW)]

    statements = counting(db)
    assert await db.run(keep("a", "b", "a")) == ["a", "b"]  # a key twice in one push: once
    assert statements == ["INSERT"]
    assert await db.run(keep("b", "c", "d")) == ["c", "d"]
    assert await db.run(keep("b", "c")) == []
    assert await db.run(keep()) == []


async def test_a_long_answer_keeps_each_new_scan_once_across_statements(db: Database) -> None:
    # A poll of a long journey: more scans than one INSERT takes, a repeat of a key in a later
    # statement, and keys seen before, in order.
    assert await db.run(lambda conn: keep_unseen(conn, [scan("k7"), scan("k150")], NOW))
    keys = [f"k{n}" for n in range(260)] + ["k3", "k201"]

    def keep_all(conn: Connection) -> list[str]:
        return [s.dedupe_key for s in keep_unseen(conn, [scan(k) for k in keys], NOW)]

    statements = counting(db)
    fresh = await db.run(keep_all)
    assert fresh == [f"k{n}" for n in range(260) if n not in (7, 150)]
    assert statements == ["INSERT"] * 3
    assert await db.run(keep_all) == []


async def test_several_pushes_keep_their_new_scans_in_one_statement(db: Database) -> None:
    """Groups (the pushes of one IngestWebhooks call) in one INSERT: each keeps its scans not
    seen before, a key in two groups is new in the first only, as one push after another."""
    assert await db.run(lambda conn: keep_unseen(conn, [scan("seen")], NOW))
    groups = [["a", "b"], [], ["b", "seen", "c", "c"], ["a", "d"]]

    def keep_groups(conn: Connection) -> list[list[str]]:
        fresh = keep_unseen_groups(conn, [[scan(k) for k in keys] for keys in groups], NOW)
        return [[s.dedupe_key for s in group] for group in fresh]

    statements = counting(db)
    assert await db.run(keep_groups) == [["a", "b"], [], ["c"], ["d"]]
    assert statements == ["INSERT"]
    assert await db.run(keep_groups) == [[], [], [], []]


def label(key: str, number: str) -> BookedLabel:
    return BookedLabel(
        carrier="sandbox",
        carrier_account_id="sandbox",
        service_code="GROUND",
        tracking_number=number,
        package_tracking_numbers=(number, number + "-2"),
        label_format=LabelFormat.ZPL,
        document=b"^XA^XZ",
        idempotency_key=key,
        created_at=NOW + timedelta(seconds=3),
        quoted_charge=Money.of(9, "USD"),
        carrier_shipment_id="shp-1",
        is_return=True,
    )


def claim(key: str, now: datetime = NOW, may_take_over: bool = True):  # type: ignore[no-untyped-def]
    return lambda conn: store.claim_booking(
        conn, key, QUOTE, LabelFormat.PDF, True, b"request", now, LEASE, may_take_over
    )


async def test_a_new_claim_is_one_statement_and_reads_as_stored(db: Database) -> None:
    statements = counting(db)
    claimed = await db.run(claim("k1"))
    assert statements == ["INSERT"]
    assert claimed.outcome is ClaimOutcome.CLAIMED
    assert claimed.stored == await db.run(store.get_label_by_key, "k1")
    assert claimed.stored.status is LabelStatus.BOOKING and claimed.stored.claimed_at == NOW
    assert claimed.stored.label is None and not claimed.stored.cancelled

    again = await db.run(claim("k1", NOW + timedelta(seconds=1)))
    assert again.outcome is ClaimOutcome.IN_FLIGHT and again.stored == claimed.stored


async def test_completing_returns_the_label_as_later_reads_see_it(db: Database) -> None:
    token = (await db.run(claim("k2"))).stored.claim_token
    assert (
        await db.run(store.complete_booking, "k2", "not-the-token", label("k2", "N"), NOW) is None
    )

    statements = counting(db)
    booked = await db.run(store.complete_booking, "k2", token, label("k2", "SBX2"), NOW)
    assert statements == ["UPDATE"]
    assert booked is not None and booked.status is LabelStatus.BOOKED
    assert booked.label == label("k2", "SBX2")
    assert booked == await db.run(store.get_label_by_key, "k2")
    assert booked == await db.run(store.get_label, booked.label_id)
    assert booked == await db.run(store.get_label_by_tracking, "SBX2")
    # Completed once: the same token cannot complete it again, and a retry replays it.
    assert await db.run(store.complete_booking, "k2", token, label("k2", "X"), NOW) is None
    replay = await db.run(claim("k2", NOW + timedelta(hours=1)))
    assert replay.outcome is ClaimOutcome.BOOKED and replay.stored == booked

    await db.run(store.mark_cancelled, booked.label_id, NOW)
    cancelled = await db.run(store.get_label, booked.label_id)
    assert cancelled is not None and cancelled.cancelled


async def test_a_stale_claim_is_taken_over_or_parked_as_unknown(db: Database) -> None:
    first = (await db.run(claim("k3"))).stored
    later = NOW + LEASE + timedelta(seconds=1)
    taken = await db.run(claim("k3", later))
    assert taken.outcome is ClaimOutcome.CLAIMED
    assert taken.stored.claim_token != first.claim_token and taken.stored.claimed_at == later

    await db.run(claim("k4"))
    parked = await db.run(claim("k4", later, may_take_over=False))
    assert parked.outcome is ClaimOutcome.UNKNOWN
    stored = await db.run(store.get_label_by_key, "k4")
    assert stored is not None and stored.status is LabelStatus.UNKNOWN


async def test_releasing_gives_the_key_up_or_marks_it_unknown(db: Database) -> None:
    token = (await db.run(claim("k5"))).stored.claim_token
    await db.run(store.release_booking, "k5", "other", False)
    assert await db.run(store.get_label_by_key, "k5") is not None  # not ours to release
    await db.run(store.release_booking, "k5", token, False)
    assert await db.run(store.get_label_by_key, "k5") is None

    token = (await db.run(claim("k6"))).stored.claim_token
    await db.run(store.release_booking, "k6", token, True)
    stored = await db.run(store.get_label_by_key, "k6")
    assert stored is not None and stored.status is LabelStatus.UNKNOWN
