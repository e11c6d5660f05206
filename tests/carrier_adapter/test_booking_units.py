"""LabelBooker on a real database: the quote is read and the key claimed in one unit of work
before the carrier call, the label stored in one after it; refusals still claim nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.contracts import mapper
from services.carrier_adapter.adapters.store import SERVICE, migrate
from services.carrier_adapter.adapters.store import labels as store
from services.carrier_adapter.adapters.store.quotes import StoredQuote, save_quotes
from services.carrier_adapter.app.booking import LabelBooker
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.model import (
    BookedLabel,
    LabelFormat,
    LabelRequest,
    RateQuote,
    ServiceLevel,
)
from services.kit.db import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.values import Money
from tests.carrier_adapter.fakes import START, ManualClock


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
