"""BillingService over gRPC: read-only views of invoices and credit notes.

partner_id scopes a request: another partner's document answers NOT_FOUND, exactly like a
missing one, so ids of other partners cannot be probed. Lists are newest first and keyset-paged
on the row sequence; the page token is that sequence, opaque to callers.
"""

from __future__ import annotations

from typing import Any

from crossdock.billing.v1 import billing_service_pb2 as svc
from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc

from services.billing.api import mapping
from services.billing.store import repository as repo
from services.kit.db import Database
from services.kit.errors import NotFound
from services.kit.paging import DEFAULT_PAGE_SIZE, decode_token, encode_token


class BillingApi(svc_grpc.BillingServiceServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def GetInvoice(self, request: svc.GetInvoiceRequest, context: Any) -> Any:
        invoice = await self._db.run(repo.get_invoice, request.invoice_id)
        if invoice is None or (request.partner_id and invoice.partner_id != request.partner_id):
            raise NotFound(
                f"invoice {request.invoice_id} not found",
                resource_type="invoice",
                resource_name=request.invoice_id,
            )
        return svc.GetInvoiceResponse(invoice=mapping.invoice_to_proto(invoice))

    async def ListInvoices(self, request: svc.ListInvoicesRequest, context: Any) -> Any:
        size = request.page_size or DEFAULT_PAGE_SIZE
        before = decode_token(request.page_token)
        # One row more than asked says whether another page exists.
        rows = await self._db.run(
            repo.list_invoices, request.partner_id, request.order_id, before, size + 1
        )
        token = encode_token(rows[size - 1][0]) if len(rows) > size else ""
        return svc.ListInvoicesResponse(
            invoices=[mapping.invoice_to_proto(inv) for _, inv in rows[:size]],
            next_page_token=token,
        )

    async def GetCreditNote(self, request: svc.GetCreditNoteRequest, context: Any) -> Any:
        note = await self._db.run(repo.get_credit_note, request.credit_note_id)
        if note is None or (request.partner_id and note.partner_id != request.partner_id):
            raise NotFound(
                f"credit note {request.credit_note_id} not found",
                resource_type="credit_note",
                resource_name=request.credit_note_id,
            )
        return svc.GetCreditNoteResponse(credit_note=mapping.credit_note_to_proto(note))

    async def ListCreditNotes(self, request: svc.ListCreditNotesRequest, context: Any) -> Any:
        size = request.page_size or DEFAULT_PAGE_SIZE
        before = decode_token(request.page_token)
        rows = await self._db.run(
            repo.list_credit_notes, request.partner_id, request.order_id, before, size + 1
        )
        token = encode_token(rows[size - 1][0]) if len(rows) > size else ""
        return svc.ListCreditNotesResponse(
            credit_notes=[mapping.credit_note_to_proto(note) for _, note in rows[:size]],
            next_page_token=token,
        )


def add_to_server(server: Any, api: BillingApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_BillingServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["BillingService"],
    )
