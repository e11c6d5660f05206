"""LabelBooker on a real database: the quote is read (or, shopping, chosen and stored) and the
key claimed in one unit of work before the carrier call, the label stored in one after it (once
the database is back, when it went down during the call); refusals still claim nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.reliability.clock import SystemClock
from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store import labels as store
from services.carrier_adapter.adapters.store.quotes import StoredQuote, get_quote, save_quotes
from services.carrier_adapter.app.booking import BookingSettings, LabelBooker, Shopping
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import CarrierUnavailable
from services.carrier_adapter.domain.model import (
    BookedLabel,
    LabelFormat,
    LabelRequest,
    RateQuote,
    RateRequest,
    ServiceLevel,
)
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound, Unavailable
from services.kit.values import Address, Money
from tests.carrier_adapter.fakes import START, ManualClock
from tests.fixtures.tcp_relay import TcpRelay


class CountingCarrier:
    """Books whatever it is asked, and counts how often."""

    carrier = "sandbox"
    capabilities = Capabilities(idempotent_booking=True)

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.bookings = 0

    async def book_label(self, request: Any) -> BookedLabel:
        self.bookings += 1
        number = f"SBX{self.bookings}"
        return BookedLabel(
            "sandbox",
            self.account_id,
            "GROUND",
            number,
            (number,),
            LabelFormat.PDF,
            b"%",
            "k",
            START,
        )


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    migrate(db_url)
    database = Database(db_url, service=SERVICE, event_mapper=mapper)
    yield database
    await database.close()


async def quoted(db: Database, rate_id: str, account_id: str) -> None:
    quote = RateQuote(
        "sandbox", account_id, "GROUND", "Ground", ServiceLevel.STANDARD, Money.of(9, "USD")
    )
    await db.run(save_quotes, [(rate_id, quote)], START, START + timedelta(hours=1))


def counted_units(db: Database) -> list[str]:
    units: list[str] = []
    run = db.run

    async def counting_run(fn: Any, *args: Any) -> Any:
        units.append(getattr(fn, "__name__", repr(fn)))
        return await run(fn, *args)

    db.run = counting_run  # type: ignore[method-assign]
    return units


def build(quote: StoredQuote) -> LabelRequest:
    return object()  # type: ignore[return-value]  # the counting carrier reads nothing


async def test_a_booking_takes_one_unit_of_work_each_side_of_the_carrier_call(
    db: Database,
) -> None:
    carrier = CountingCarrier("sandbox")
    booker = LabelBooker(db, ConnectorRegistry([carrier]), ManualClock())
    await quoted(db, "rte_1", "sandbox")
    units = counted_units(db)

    stored, replayed = await booker.book("k", "rte_1", LabelFormat.PDF, False, build, b"req")
    assert not replayed and stored.status is store.LabelStatus.BOOKED
    assert units == ["_quote_and_claim", "complete_booking"]

    again, replayed = await booker.book("k", "rte_1", LabelFormat.PDF, False, build, b"req")
    assert replayed and again == stored
    assert units[2:] == ["_quote_and_claim"]
    assert carrier.bookings == 1


async def test_an_unknown_rate_or_account_claims_nothing(db: Database) -> None:
    carrier = CountingCarrier("sandbox")
    booker = LabelBooker(db, ConnectorRegistry([carrier]), ManualClock())
    await quoted(db, "rte_gone_account", "retired")

    with pytest.raises(NotFound):
        await booker.book("k1", "rte_missing", LabelFormat.PDF, False, build, b"req")
    with pytest.raises(FailedPrecondition, match="no longer configured"):
        await booker.book("k2", "rte_gone_account", LabelFormat.PDF, False, build, b"req")

    assert await db.run(store.get_label_by_key, "k1") is None
    assert await db.run(store.get_label_by_key, "k2") is None
    assert carrier.bookings == 0


# -- shop and book ------------------------------------------------------------------------------


class QuotingCarrier(CountingCarrier):
    """Quotes what the test says (none, or a failure) and books whatever it is asked."""

    def __init__(self, account_id: str, *, idempotent: bool = True) -> None:
        super().__init__(account_id)
        self.capabilities = Capabilities(idempotent_booking=idempotent)
        self.quotes: list[RateQuote] = []
        self.failure: Exception | None = None

    async def rate(self, request: Any) -> list[RateQuote]:
        if self.failure is not None:
            raise self.failure
        return self.quotes


def offer(account_id: str, code: str, level: ServiceLevel, amount: str) -> RateQuote:
    return RateQuote("sandbox", account_id, code, code, level, Money.of(amount, "USD"), 3)


DOCK = Address("Dock 1", ("1 Dock Rd",), "Atlanta", "30301", "US")
# Standard (no level), no carrier preference; the quoting carriers read nothing of the request.
SHOP_STANDARD = Shopping(RateRequest(DOCK, DOCK, ()), None, (), timedelta(hours=1))


class Built:
    """The label requests' service codes, as the carrier would be asked for them."""

    def __init__(self) -> None:
        self.codes: list[str] = []

    def __call__(self, quote: StoredQuote) -> LabelRequest:
        self.codes.append(quote.quote.service_code)
        return object()  # type: ignore[return-value]


async def test_shop_and_book_stores_its_quote_in_the_claim_and_a_replay_keeps_the_first(
    db: Database,
) -> None:
    carrier = QuotingCarrier("sandbox")
    carrier.quotes = [
        offer("sandbox", "ECO", ServiceLevel.ECONOMY, "5.00"),
        offer("sandbox", "GROUND", ServiceLevel.STANDARD, "9.00"),
        offer("sandbox", "AIR", ServiceLevel.OVERNIGHT, "30.00"),
    ]
    booker = LabelBooker(db, ConnectorRegistry([carrier]), ManualClock())
    units, built = counted_units(db), Built()

    stored, replayed, quote = await booker.shop_and_book(
        "k", SHOP_STANDARD, LabelFormat.PDF, False, built, b"req"
    )
    assert not replayed and stored.status is store.LabelStatus.BOOKED
    assert quote is not None and quote.rate_id == stored.rate_id
    assert (quote.quote.service_code, built.codes) == ("GROUND", ["GROUND"])
    # One unit of work before the carrier call (the quote and the claim), one after.
    assert units == ["_store_quote_and_claim", "complete_booking"]
    assert await db.run(get_quote, stored.rate_id) == quote
    del units[:]

    # The carriers quote otherwise now (the old quote is gone): the key keeps its first label
    # and its first quote.
    carrier.quotes = [offer("sandbox", "CHEAP", ServiceLevel.STANDARD, "1.00")]
    again, replayed, first = await booker.shop_and_book(
        "k", SHOP_STANDARD, LabelFormat.PDF, False, built, b"req"
    )
    assert replayed and again == stored and first == quote
    assert units == ["_store_quote_and_claim"]
    assert carrier.bookings == 1 and built.codes == ["GROUND"]


async def test_no_quote_meeting_the_level_books_nothing_unless_the_key_has_a_label(
    db: Database,
) -> None:
    carrier = QuotingCarrier("sandbox")
    carrier.quotes = [offer("sandbox", "ECO", ServiceLevel.ECONOMY, "5.00")]
    booker = LabelBooker(db, ConnectorRegistry([carrier]), ManualClock())

    with pytest.raises(FailedPrecondition) as refused:
        await booker.shop_and_book("k1", SHOP_STANDARD, LabelFormat.PDF, False, build, b"req")
    assert refused.value.reason == "NO_RATE_MEETS_SERVICE_LEVEL"
    # A carrier that may quote later: try again later, not a final refusal.
    carrier.failure = CarrierUnavailable("sandbox", "rating is down", maybe_committed=False)
    with pytest.raises(Unavailable, match="no rate yet: sandbox: "):
        await booker.shop_and_book("k1", SHOP_STANDARD, LabelFormat.PDF, False, build, b"req")
    assert await db.run(store.get_label_by_key, "k1") is None
    assert carrier.bookings == 0

    # A key that booked answers its label even when no quote meets the level any more.
    carrier.failure = None
    carrier.quotes = [offer("sandbox", "GROUND", ServiceLevel.STANDARD, "9.00")]
    booked, _, _ = await booker.shop_and_book(
        "k2", SHOP_STANDARD, LabelFormat.PDF, False, build, b"req"
    )
    carrier.quotes = []
    again, replayed, quote = await booker.shop_and_book(
        "k2", SHOP_STANDARD, LabelFormat.PDF, False, build, b"req"
    )
    assert replayed and again == booked
    assert quote is not None and quote.quote.service_code == "GROUND"
    assert carrier.bookings == 1


async def test_a_stale_claim_is_taken_over_at_its_first_quote_by_its_own_account(
    db: Database,
) -> None:
    """A booking whose holder died (its lease ran out): shop and book takes it over only when
    the claim's carrier dedupes by our key, and books the quote the key was claimed with."""
    clock = ManualClock()
    dedupes, blind = QuotingCarrier("dedupes"), QuotingCarrier("blind", idempotent=False)
    for carrier in (dedupes, blind):
        carrier.quotes = [offer(carrier.account_id, "NEW", ServiceLevel.STANDARD, "1.00")]
    booker = LabelBooker(db, ConnectorRegistry([dedupes, blind]), clock)
    lease = timedelta(minutes=5)

    def abandoned_claim(key: str, account_id: str) -> Callable[[Any], None]:
        """A claim on `key` at a quote of `account_id`, whose holder then died."""
        first = StoredQuote(
            f"rte_{key}",
            offer(account_id, "FIRST", ServiceLevel.STANDARD, "9.00"),
            START + timedelta(hours=1),
        )

        def claim(conn: Any) -> None:
            save_quotes(conn, [(first.rate_id, first.quote)], START, first.expires_at)
            store.claim_booking(conn, key, first, LabelFormat.PDF, False, b"", START, lease, True)

        return claim

    await db.run(abandoned_claim("k_dedupes", "dedupes"))
    await db.run(abandoned_claim("k_blind", "blind"))
    clock.advance(lease.total_seconds() + 1)

    built = Built()
    only_dedupes = Shopping(SHOP_STANDARD.request, None, ("dedupes",), timedelta(hours=1))
    stored, replayed, quote = await booker.shop_and_book(
        "k_dedupes", only_dedupes, LabelFormat.PDF, False, built, b"req"
    )
    assert not replayed and built.codes == ["FIRST"]
    assert quote is not None and quote.rate_id == "rte_k_dedupes" == stored.rate_id

    # Today's cheapest quote is from a carrier that dedupes; the claim's is not: never re-sent.
    with pytest.raises(FailedPrecondition) as unknown:
        await booker.shop_and_book("k_blind", only_dedupes, LabelFormat.PDF, False, built, b"r")
    assert unknown.value.reason == "LABEL_OUTCOME_UNKNOWN"
    assert built.codes == ["FIRST"] and blind.bookings == 0


class CuttingCarrier(CountingCarrier):
    """Books, but the database is cut off while it does (a PostgreSQL restart during the
    carrier call) and comes back `back_after` seconds later."""

    def __init__(self, account_id: str, relay: TcpRelay, back_after: float) -> None:
        super().__init__(account_id)
        self.relay = relay
        self.back_after = back_after

    async def book_label(self, request: Any) -> BookedLabel:
        self.relay.cut()
        asyncio.get_running_loop().call_later(self.back_after, self.relay.start)
        return await super().book_label(request)


class StartClock(SystemClock):
    """Real waits (the relay comes back in real time), the quotes' instant as now."""

    def now(self) -> datetime:
        return START


@pytest.mark.postgres
async def test_a_label_booked_while_the_database_restarts_is_stored_once_it_is_back(
    postgres_url: str,
) -> None:
    """The carrier answered, the database did not: the label is stored when the database is
    back, and the caller gets it (not UNAVAILABLE, with the key held in flight for the lease)."""
    url = make_url(postgres_url)
    relay = TcpRelay(url.host or "127.0.0.1", url.port or 5432)
    relay.start()
    migrate(postgres_url)
    db = Database(
        url.set(port=relay.port).render_as_string(False), service=SERVICE, event_mapper=mapper
    )
    try:
        carrier = CuttingCarrier("sandbox", relay, back_after=1.5)
        booker = LabelBooker(db, ConnectorRegistry([carrier]), StartClock())
        await quoted(db, "rte_1", "sandbox")

        stored, replayed = await booker.book("k", "rte_1", LabelFormat.PDF, False, build, b"r")

        assert not replayed and stored.status is store.LabelStatus.BOOKED
        assert stored.label is not None and stored.label.tracking_number == "SBX1"
        assert await db.run(store.get_label_by_key, "k") == stored
        assert carrier.bookings == 1
    finally:
        await db.close()


class SlowCarrier(CountingCarrier):
    """Takes `seconds` to book, longer than the booking lease."""

    def __init__(self, account_id: str, seconds: float) -> None:
        super().__init__(account_id)
        self.seconds = seconds

    async def book_label(self, request: Any) -> BookedLabel:
        await asyncio.sleep(self.seconds)
        return await super().book_label(request)


async def test_a_booking_slower_than_the_lease_keeps_its_claim_and_books_once(
    db: Database,
) -> None:
    """The carrier takes 4 leases to answer. The running booking renews its claim, so another
    replica's call with the same key waits for it instead of taking it over (a second carrier
    call, and the first booking's label refused for a lost claim)."""
    carrier = SlowCarrier("sandbox", seconds=1.2)
    registry = ConnectorRegistry([carrier])
    settings = BookingSettings(
        lease=timedelta(seconds=0.3), wait=timedelta(seconds=10), poll_interval_seconds=0.05
    )
    first = LabelBooker(db, registry, SystemClock(), settings)
    second = LabelBooker(db, registry, SystemClock(), settings)  # another replica
    # Quoted on the real clock the bookers read, so the quote is still bookable.
    offer = RateQuote(
        "sandbox", "sandbox", "GROUND", "Ground", ServiceLevel.STANDARD, Money.of(9, "USD")
    )
    now = datetime.now(UTC)
    await db.run(save_quotes, [("rte_1", offer)], now, now + timedelta(hours=1))

    booking = asyncio.create_task(first.book("k", "rte_1", LabelFormat.PDF, False, build, b"r"))
    await asyncio.sleep(0.7)  # two leases: a claim not renewed would be stale now
    stored, replayed = await second.book("k", "rte_1", LabelFormat.PDF, False, build, b"r")
    label, first_replayed = await booking

    assert carrier.bookings == 1
    assert replayed and not first_replayed
    assert stored == label and stored.status is store.LabelStatus.BOOKED
