"""ListInvoices and ListCreditNotes narrowed to orders (order_ids), over a real gRPC server on
the billing database (SQLite and PostgreSQL): only those orders' documents, the other filters
and paging as without it, and the field's rules enforced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
from crossdock.billing.v1 import billing_service_pb2 as svc

from services.billing.adapters.store import migrate
from services.billing.adapters.store import repository as repo
from services.billing.domain.documents import CreditNote, Invoice
from services.billing.domain.invoicing import Line, LineKind
from services.kit.db import Database
from tests.billing.test_list_invoices_by_shipment import billing_stub

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8P"
OTHER_PARTNER = "ptn_01JD8Q3V6F1Q2ZK9WJ7X4M5N8Q"


def _id(prefix: str, n: int) -> str:
    return f"{prefix}_01JD8Q3V6F1Q2ZK9WJ7X4M5N{n:02d}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    migrate(db_url)
    database = Database(db_url, service="billing")
    # Orders 1..4, one invoice and one credit note each; order 4 belongs to another partner.
    # Order 2 has a second shipment, so two invoices and two credit notes.
    line = Line(1, LineKind.FREIGHT, 0, "", "Freight", 1, Decimal("5"))
    documents = [(n, n) for n in range(1, 5)] + [(2, 5)]
    for order, n in documents:
        partner = OTHER_PARTNER if order == 4 else PARTNER
        invoice = Invoice(
            _id("inv", n),
            f"INV-2026-{n:06d}",
            "INV-2026",
            _id("ord", order),
            _id("shp", n),
            partner,
            {},
            "EUR",
            (line,),
            Decimal("5"),
            NOW,
        )
        note = CreditNote(
            _id("crn", n),
            f"CRN-2026-{n:06d}",
            invoice.invoice_id,
            invoice.order_id,
            "",
            partner,
            "EUR",
            (line,),
            Decimal("5"),
            "return received",
            NOW,
        )
        database.run_sync(lambda conn, i=invoice: repo.insert_invoice(conn, i))
        database.run_sync(lambda conn, c=note: repo.insert_credit_note(conn, c, c.credit_note_id))
    yield database
    database.engine.dispose()


WANTED = [_id("ord", 2), _id("ord", 4), _id("ord", 9)]


async def test_only_the_named_orders_invoices_are_listed_and_paged(db: Database) -> None:
    async with billing_stub(db) as stub:
        answer = await stub.ListInvoices(svc.ListInvoicesRequest(order_ids=WANTED))
        # Newest first; order 9 has no invoice.
        assert [i.invoice_id for i in answer.invoices] == [
            _id("inv", 5),
            _id("inv", 4),
            _id("inv", 2),
        ]
        assert answer.next_page_token == ""

        scoped = await stub.ListInvoices(
            svc.ListInvoicesRequest(order_ids=WANTED, partner_id=PARTNER)
        )
        assert [i.invoice_id for i in scoped.invoices] == [_id("inv", 5), _id("inv", 2)]

        # With shipment_ids too, both apply.
        both = await stub.ListInvoices(
            svc.ListInvoicesRequest(order_ids=WANTED, shipment_ids=[_id("shp", 2), _id("shp", 1)])
        )
        assert [i.invoice_id for i in both.invoices] == [_id("inv", 2)]

        first = await stub.ListInvoices(svc.ListInvoicesRequest(order_ids=WANTED, page_size=2))
        assert [i.invoice_id for i in first.invoices] == [_id("inv", 5), _id("inv", 4)]
        second = await stub.ListInvoices(
            svc.ListInvoicesRequest(order_ids=WANTED, page_size=2, page_token=first.next_page_token)
        )
        assert [i.invoice_id for i in second.invoices] == [_id("inv", 2)]
        assert second.next_page_token == ""


async def test_only_the_named_orders_credit_notes_are_listed_and_paged(db: Database) -> None:
    async with billing_stub(db) as stub:
        answer = await stub.ListCreditNotes(svc.ListCreditNotesRequest(order_ids=WANTED))
        assert [c.credit_note_id for c in answer.credit_notes] == [
            _id("crn", 5),
            _id("crn", 4),
            _id("crn", 2),
        ]
        scoped = await stub.ListCreditNotes(
            svc.ListCreditNotesRequest(order_ids=WANTED, partner_id=PARTNER)
        )
        assert [c.credit_note_id for c in scoped.credit_notes] == [_id("crn", 5), _id("crn", 2)]

        first = await stub.ListCreditNotes(
            svc.ListCreditNotesRequest(order_ids=WANTED, page_size=2)
        )
        assert [c.credit_note_id for c in first.credit_notes] == [_id("crn", 5), _id("crn", 4)]
        second = await stub.ListCreditNotes(
            svc.ListCreditNotesRequest(
                order_ids=WANTED, page_size=2, page_token=first.next_page_token
            )
        )
        assert [c.credit_note_id for c in second.credit_notes] == [_id("crn", 2)]
        assert second.next_page_token == ""

        everything = await stub.ListCreditNotes(svc.ListCreditNotesRequest())
        assert len(everything.credit_notes) == 5


async def test_bad_order_ids_are_invalid_arguments(db: Database) -> None:
    async with billing_stub(db) as stub:
        for bad in (["ord_1"], [_id("ord", 1), ""], [_id("ord", 1)] * 501):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ListInvoices(svc.ListInvoicesRequest(order_ids=bad))
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "order_ids" in (invalid.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await stub.ListCreditNotes(svc.ListCreditNotesRequest(order_ids=bad))
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "order_ids" in (invalid.value.details() or "")
        answer = await stub.ListCreditNotes(
            svc.ListCreditNotesRequest(order_ids=[_id("ord", 1)] * 500)
        )
        assert [c.credit_note_id for c in answer.credit_notes] == [_id("crn", 1)]
