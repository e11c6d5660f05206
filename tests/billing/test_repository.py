"""Billing's store on SQLite and PostgreSQL: number series count from 1 with no gaps, the first
OrderPlaced's prices win, and a shipment's freight row is written once then overwritten whole."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Connection

from services.billing.adapters.store import migrate
from services.billing.adapters.store import repository as repo
from services.billing.domain.documents import Freight, Invoice, OrderPrices
from services.billing.domain.invoicing import Line, LineKind, OrderLinePrice
from services.kit.db import Database

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="billing")
    yield database
    database.engine.dispose()


def test_each_series_counts_from_one_without_gaps_and_a_rollback_takes_nothing(
    db: Database,
) -> None:
    taken = db.run_sync(lambda conn: [repo.next_number(conn, s) for s in ("A", "A", "B", "A")])
    assert taken == [1, 2, 1, 3]

    def take_then_fail(conn: Connection) -> None:
        repo.next_number(conn, "A")
        raise RuntimeError("posting failed")

    with pytest.raises(RuntimeError):
        db.run_sync(take_then_fail)
    assert db.run_sync(lambda conn: repo.next_number(conn, "A")) == 4


def test_the_first_prices_win_and_freight_is_written_then_overwritten(db: Database) -> None:
    first = OrderPrices("ord_1", "ptn_1", {"party_id": "C1"}, "EUR", {1: _price("9.50")})
    second = OrderPrices("ord_1", "ptn_2", {"party_id": "C2"}, "USD", {1: _price("1.00")})
    db.run_sync(lambda conn: repo.save_prices(conn, first))
    db.run_sync(lambda conn: repo.save_prices(conn, second))
    assert db.run_sync(lambda conn: repo.get_prices(conn, "ord_1")) == first

    quoted = Freight("frt_1", "shp_1", "ord_1", "ptn_1", "dhl", "EUR", Decimal("5"), None, None)
    final = Freight(
        "frt_1", "shp_1", "ord_1", "ptn_1", "dhl", "EUR", Decimal("5"), Decimal("6.10"), NOW
    )
    db.run_sync(lambda conn: repo.save_freight(conn, quoted))
    assert db.run_sync(lambda conn: repo.get_freight(conn, "shp_1")) == quoted
    db.run_sync(lambda conn: repo.save_freight(conn, final))
    assert db.run_sync(lambda conn: repo.get_freight(conn, "shp_1")) == final


def test_a_shipment_is_invoiced_once_it_has_an_invoice(db: Database) -> None:
    assert not db.run_sync(lambda conn: repo.has_invoice_for_shipment(conn, "shp_1"))
    line = Line(1, LineKind.FREIGHT, 0, "", "Freight", 1, Decimal("5"))
    invoice = Invoice(
        "inv_1",
        "INV-2026-000001",
        "INV-2026",
        "ord_1",
        "shp_1",
        "ptn_1",
        {},
        "EUR",
        (line,),
        Decimal("5"),
        NOW,
    )
    db.run_sync(lambda conn: repo.insert_invoice(conn, invoice))
    assert db.run_sync(lambda conn: repo.has_invoice_for_shipment(conn, "shp_1"))
    assert not db.run_sync(lambda conn: repo.has_invoice_for_shipment(conn, "shp_2"))
    assert db.run_sync(lambda conn: repo.get_invoice(conn, "inv_1")) == invoice


def _price(amount: str) -> OrderLinePrice:
    return OrderLinePrice(1, "SKU-A", Decimal(amount))
