"""The tracking poller against a migrated SQLite store, a hand-driven clock and a fake connector:
pace by status, stop at delivered, give up on silent parcels, record failures, back off from an
open circuit, and never let two replicas poll one label at once."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.carriers.tables import load_status_table
from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store.labels import (
    claim_booking,
    complete_booking,
    mark_cancelled,
)
from services.carrier_adapter.adapters.store.polls import (
    PolledLabel,
    claim_poll,
    enroll_labels,
    finish_poll,
    get_poll,
)
from services.carrier_adapter.adapters.store.quotes import StoredQuote
from services.carrier_adapter.adapters.store.tables import metadata
from services.carrier_adapter.app.polling import PollSettings, TrackingPoller
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import CarrierUnavailable, CircuitOpen
from services.carrier_adapter.domain.model import (
    BookedLabel,
    CancelRequest,
    InboundWebhook,
    LabelFormat,
    LabelRequest,
    RateQuote,
    RateRequest,
    ServiceLevel,
    TrackingResult,
    TrackingStatus,
    WebhookBatch,
)
from services.carrier_adapter.domain.normalize import RawScan, ScanNormalizer
from services.carrier_adapter.domain.polling import PollPolicy
from services.kit import outbox
from services.kit.db import Database
from services.kit.values import Money
from tests.carrier_adapter.fakes import START, ManualClock

HOUR = timedelta(hours=1)


class FakeCarrier:
    """A connector whose carrier answers from a dict; it only tracks."""

    def __init__(self, account_id: str, *, push: bool = False) -> None:
        self.account_id = account_id
        self.carrier = "ups"
        self.capabilities = Capabilities(push_tracking=push)
        self.normalizer = ScanNormalizer(load_status_table("ups"))
        self.scans: dict[str, list[RawScan]] = {}
        self.calls: list[str] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None  # when set, track waits for it

    def answer(self, number: str, *codes_hours_in: tuple[str, float]) -> None:
        self.scans[number] = [
            RawScan(code, code, START + timedelta(hours=hours)) for code, hours in codes_hours_in
        ]

    async def track(self, tracking_number: str) -> TrackingResult:
        self.calls.append(tracking_number)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.normalizer.normalize(tracking_number, self.scans.get(tracking_number, []))

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        raise NotImplementedError

    async def book_label(self, request: LabelRequest) -> BookedLabel:
        raise NotImplementedError

    async def cancel_label(self, request: CancelRequest) -> None:
        raise NotImplementedError

    def parse_webhook(self, webhook: InboundWebhook) -> WebhookBatch:
        raise NotImplementedError


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'carrier_adapter.db'}"
    migrate(url)
    database = Database(url, service=SERVICE, event_mapper=mapper)
    yield database
    await database.close()


async def book(db: Database, account_id: str, number: str, at: datetime = START) -> str:
    """A label booked the way BookLabel stores it; returns its label id."""
    quote = RateQuote(
        "ups", account_id, "ups_ground", "UPS Ground", ServiceLevel.STANDARD, Money.of(9, "USD")
    )
    key = f"shp_{number}"
    label = BookedLabel(
        "ups", account_id, "ups_ground", number, (number,), LabelFormat.PDF, b"%PDF", key, at
    )

    def store(conn: Connection) -> str:
        stored_quote = StoredQuote(f"rte_{number}", quote, at + timedelta(days=1))
        lease = timedelta(minutes=5)
        claim = claim_booking(conn, key, stored_quote, LabelFormat.PDF, False, b"", at, lease, True)
        stored = complete_booking(conn, key, claim.stored.claim_token, label, at)
        assert stored is not None
        return stored.label_id

    return await db.run(store)


def poller(
    db: Database, clock: ManualClock, *carriers: FakeCarrier, policy: PollPolicy | None = None
) -> TrackingPoller:
    return TrackingPoller(
        db, ConnectorRegistry(carriers), clock, PollSettings(policy or PollPolicy(), lease=HOUR)
    )


async def poll_row(db: Database, label_id: str) -> PolledLabel:
    row = await db.run(get_poll, label_id)
    assert row is not None
    return row


async def events_appended(db: Database) -> int:
    return (await db.run(outbox.backlog))[0]  # no relay runs here: every event is pending


async def test_polls_at_the_pace_of_the_status_until_delivered(db: Database) -> None:
    clock, ups = ManualClock(), FakeCarrier("ups_east")
    label_id = await book(db, "ups_east", "1ZPACE")
    scheduler = poller(db, clock, ups)
    ups.answer("1ZPACE", ("MP", 0), ("OR", 2))

    assert await scheduler.sweep() == 0  # a new label waits one PENDING interval (6 h)
    clock.advance(6 * 3600 + 1)
    assert await scheduler.sweep() == 1
    assert (await poll_row(db, label_id)).state.status is TrackingStatus.PICKED_UP
    assert await events_appended(db) == 1
    assert await scheduler.sweep() == 0  # picked up: next in 4 h

    clock.advance(4 * 3600)
    assert await scheduler.sweep() == 1  # the same scans again: nothing new to publish
    assert await events_appended(db) == 1

    ups.answer("1ZPACE", ("MP", 0), ("OR", 2), ("KB", 9))
    clock.advance(4 * 3600)
    assert await scheduler.sweep() == 1
    row = await poll_row(db, label_id)
    assert row.state.status is TrackingStatus.DELIVERED
    assert row.state.last_scan_at == clock.now()
    assert await events_appended(db) == 2

    clock.advance(10 * 24 * 3600)
    assert await scheduler.sweep() == 0
    assert ups.calls == ["1ZPACE"] * 3


async def test_a_silent_parcel_is_given_up(db: Database) -> None:
    clock, ups = ManualClock(), FakeCarrier("ups_east")
    await book(db, "ups_east", "1ZLOST")
    scheduler = poller(db, clock, ups, policy=PollPolicy(give_up_after=timedelta(days=1)))

    for _ in range(16):  # two days of sweeps, every three hours
        clock.advance(3 * 3600)
        await scheduler.sweep()

    # PENDING polls every 6 h, and only within the day after the label: at 6, 12, 18 and 24 h.
    assert len(ups.calls) == 4


async def test_a_failed_poll_is_recorded_and_retried_one_interval_later(db: Database) -> None:
    clock, ups = ManualClock(), FakeCarrier("ups_east")
    label_id = await book(db, "ups_east", "1ZFAIL")
    scheduler = poller(db, clock, ups)
    ups.error = CarrierUnavailable("ups", "track: HTTP 503", maybe_committed=False)

    clock.advance(6 * 3600 + 1)
    assert await scheduler.sweep() == 1
    row = await poll_row(db, label_id)
    assert row.state.last_polled_at == clock.now()
    assert "HTTP 503" in row.last_error
    assert await scheduler.sweep() == 0

    ups.error = None
    ups.answer("1ZFAIL", ("OR", 1))
    clock.advance(6 * 3600)
    assert await scheduler.sweep() == 1
    assert (await poll_row(db, label_id)).last_error == ""
    assert len(ups.calls) == 2


async def test_an_open_circuit_leaves_the_account_for_the_next_sweep(db: Database) -> None:
    clock, ups = ManualClock(), FakeCarrier("ups_east")
    first, second = await book(db, "ups_east", "1ZA"), await book(db, "ups_east", "1ZB")
    scheduler = poller(db, clock, ups)
    ups.error = CircuitOpen("ups", 30.0)

    clock.advance(6 * 3600 + 1)
    assert await scheduler.sweep() == 0
    assert len(ups.calls) == 1  # the breaker refused one; the other was not even tried
    for label_id in (first, second):
        row = await poll_row(db, label_id)
        assert row.state.last_polled_at is None  # still due, and its lease is free

    ups.error = None
    assert await scheduler.sweep() == 2


async def test_cancelled_labels_and_pushing_accounts_are_not_polled(db: Database) -> None:
    clock = ManualClock()
    ups, pusher = FakeCarrier("ups_east"), FakeCarrier("ups_push", push=True)
    voided = await book(db, "ups_east", "1ZVOID")
    await db.run(mark_cancelled, voided, START)
    await book(db, "ups_push", "1ZPUSH")

    clock.advance(7 * 3600)
    assert await poller(db, clock, ups, pusher).sweep() == 0
    assert ups.calls == pusher.calls == []

    # An account configured to be polled although its carrier pushes (POLL_TRACKING=true).
    forced = TrackingPoller(
        db, ConnectorRegistry([pusher], {"ups_push": True}), clock, PollSettings(PollPolicy())
    )
    assert await forced.sweep() == 1
    assert pusher.calls == ["1ZPUSH"]


async def test_two_replicas_never_poll_one_label_at_once(db: Database) -> None:
    clock, ups = ManualClock(), FakeCarrier("ups_east")
    await book(db, "ups_east", "1ZBUSY")
    ups.answer("1ZBUSY", ("OR", 1))
    ups.gate = asyncio.Event()
    replica_a, replica_b = poller(db, clock, ups), poller(db, clock, ups)
    clock.advance(6 * 3600 + 1)

    sweep_a = asyncio.create_task(replica_a.sweep())
    for _ in range(1000):  # until replica A is inside the carrier call, holding the lease
        if ups.calls:
            break
        await asyncio.sleep(0.01)
    # Bounded only so a broken lease fails instead of hanging on the gate.
    assert await asyncio.wait_for(replica_b.sweep(), 30) == 0

    ups.gate.set()
    assert await sweep_a == 1
    assert await replica_b.sweep() == 0  # A's poll counts: not due again for 4 h
    assert ups.calls == ["1ZBUSY"]


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_records_nothing(
    db: Database,
) -> None:
    label_id = await book(db, "ups_east", "1ZSLOW")
    await db.run(enroll_labels, ["ups_east"], START)
    row = await poll_row(db, label_id)
    now = START + 7 * HOUR

    assert await db.run(claim_poll, label_id, row.polled_version, "slow", now, now + HOUR)
    assert not await db.run(claim_poll, label_id, row.polled_version, "fast", now, now + HOUR)
    later = now + 2 * HOUR  # the slow replica died or hangs: its lease lapsed
    assert await db.run(claim_poll, label_id, row.polled_version, "fast", later, later + HOUR)
    in_transit = functools.partial(finish_poll, status=TrackingStatus.IN_TRANSIT)
    assert await db.run(in_transit, label_id, "fast", later)
    pending = functools.partial(finish_poll, status=TrackingStatus.PENDING)
    assert not await db.run(pending, label_id, "slow", later)
    assert (await poll_row(db, label_id)).state.status is TrackingStatus.IN_TRANSIT
    # Read before the fast poll: a claim on that stale read fails even though the lease is free.
    assert not await db.run(claim_poll, label_id, row.polled_version, "late", later, later + HOUR)


async def test_the_migrations_match_the_tables_module(db: Database) -> None:
    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    kit = ("'outbox'", "'inbox'", "ix_outbox", "ix_inbox")
    assert [d for d in drift if not any(name in repr(d) for name in kit)] == []
