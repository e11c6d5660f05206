"""ListInvoices narrowed to shipments (shipment_ids), over a real gRPC server on the billing
database (SQLite and PostgreSQL): only those shipments' invoices, the other filters and paging
as without it, and the field's rules enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from crossdock.billing.v1 import billing_service_pb2 as svc
from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc

from services.billing.adapters.store import migrate
from services.billing.adapters.store import repository as repo
from services.billing.domain.documents import Invoice
from services.billing.domain.invoicing import Line, LineKind
from services.billing.entrypoints.grpc import BillingApi
from services.kit.client import open_channel
from services.kit.db import Database
from services.kit.uow import UnitsOfWork
from tests.kit.server_support import serving

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"


def _id(prefix: str, n: int) -> str:
    return f"{prefix}_01JD8Q3V6F1Q2ZK9WJ7X4M5N{n:02d}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="billing")
    # Invoices of shipments 1..4; shipment 4's belongs to another partner.
    for n in range(1, 5):
        line = Line(1, LineKind.FREIGHT, 0, "", "Freight", 1, Decimal("5"))
        invoice = Invoice(
            _id("inv", n),
            f"INV-2026-{n:06d}",
            "INV-2026",
            _id("ord", n),
            _id("shp", n),
            OTHER_PARTNER if n == 4 else PARTNER,
            {},
            "EUR",
            (line,),
            Decimal("5"),
            NOW,
        )
        database.run_sync(lambda conn, i=invoice: repo.insert_invoice(conn, i))
    yield database
    database.engine.dispose()


@asynccontextmanager
async def billing_stub(db: Database) -> AsyncIterator[svc_grpc.BillingServiceStub]:
    service = svc.DESCRIPTOR.services_by_name["BillingService"]
    async with (
        serving(
            (svc_grpc.add_BillingServiceServicer_to_server, BillingApi(UnitsOfWork(db)), service),
            service="billing",
        ) as server,
        open_channel(f"127.0.0.1:{server.port}", default_timeout_seconds=10) as channel,
    ):
        yield svc_grpc.BillingServiceStub(channel)


def _shipments(answer: svc.ListInvoicesResponse) -> list[str]:
    return [invoice.shipment_id for invoice in answer.invoices]


async def test_only_the_named_shipments_invoices_are_listed_and_paged(db: Database) -> None:
    async with billing_stub(db) as stub:
        wanted = [_id("shp", 1), _id("shp", 3), _id("shp", 4), _id("shp", 9)]
        answer = await stub.ListInvoices(svc.ListInvoicesRequest(shipment_ids=wanted))
        # Newest first; shipment 9 has no invoice.
        assert _shipments(answer) == [_id("shp", 4), _id("shp", 3), _id("shp", 1)]
        assert answer.next_page_token == ""

        # The partner filter still applies.
        scoped = await stub.ListInvoices(
            svc.ListInvoicesRequest(shipment_ids=wanted, partner_id=PARTNER)
        )
        assert _shipments(scoped) == [_id("shp", 3), _id("shp", 1)]

        # Paged as without the filter.
        first = await stub.ListInvoices(svc.ListInvoicesRequest(shipment_ids=wanted, page_size=2))
        assert _shipments(first) == [_id("shp", 4), _id("shp", 3)]
        second = await stub.ListInvoices(
            svc.ListInvoicesRequest(
                shipment_ids=wanted, page_size=2, page_token=first.next_page_token
            )
        )
        assert _shipments(second) == [_id("shp", 1)] and second.next_page_token == ""

        # Without it, every invoice.
        everything = await stub.ListInvoices(svc.ListInvoicesRequest())
        assert len(everything.invoices) == 4


async def test_bad_shipment_ids_are_invalid_arguments(db: Database) -> None:
    async with billing_stub(db) as stub:
        for bad in (["shp_1"], [_id("shp", 1), ""], [_id("shp", 1)] * 501):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ListInvoices(svc.ListInvoicesRequest(shipment_ids=bad))
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "shipment_ids" in (invalid.value.details() or "")
        # 500 is the most allowed.
        answer = await stub.ListInvoices(
            svc.ListInvoicesRequest(shipment_ids=[_id("shp", 1)] * 500)
        )
        assert _shipments(answer) == [_id("shp", 1)]
