"""BillingService over gRPC: read-only views of invoices and credit notes.

Request translation only: proto -> app query, run it in a unit of work, documents -> proto.
Lists are newest first and keyset-paged on the row sequence (services.kit.paging); the page
token is opaque to callers.
"""

from __future__ import annotations

from typing import Any

from crossdock.billing.v1 import billing_service_pb2 as svc
from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc

from services.billing import app
from services.billing.adapters import contracts
from services.kit.paging import page_size
from services.kit.uow import UnitsOfWork


class BillingApi(svc_grpc.BillingServiceServicer):
    def __init__(self, units: UnitsOfWork) -> None:
        self._units = units

    async def GetInvoice(self, request: svc.GetInvoiceRequest, context: Any) -> Any:
        invoice = await self._units.run(app.get_invoice, request.invoice_id, request.partner_id)
        return svc.GetInvoiceResponse(invoice=contracts.invoice_to_proto(invoice))

    async def ListInvoices(self, request: svc.ListInvoicesRequest, context: Any) -> Any:
        query = app.DocumentQuery(
            request.partner_id,
            request.order_id,
            request.page_token,
            page_size(request.page_size),
            shipment_ids=tuple(request.shipment_ids),
            order_ids=tuple(request.order_ids),
        )
        invoices, token = await self._units.run(app.list_invoices, query)
        return svc.ListInvoicesResponse(
            invoices=[contracts.invoice_to_proto(invoice) for invoice in invoices],
            next_page_token=token,
        )

    async def GetCreditNote(self, request: svc.GetCreditNoteRequest, context: Any) -> Any:
        note = await self._units.run(
            app.get_credit_note, request.credit_note_id, request.partner_id
        )
        return svc.GetCreditNoteResponse(credit_note=contracts.credit_note_to_proto(note))

    async def ListCreditNotes(self, request: svc.ListCreditNotesRequest, context: Any) -> Any:
        query = app.DocumentQuery(
            request.partner_id,
            request.order_id,
            request.page_token,
            page_size(request.page_size),
            order_ids=tuple(request.order_ids),
        )
        notes, token = await self._units.run(app.list_credit_notes, query)
        return svc.ListCreditNotesResponse(
            credit_notes=[contracts.credit_note_to_proto(note) for note in notes],
            next_page_token=token,
        )


def add_to_server(server: Any, api: BillingApi) -> None:
    """Register the servicer on a kit ServiceServer."""
    server.add_servicer(
        svc_grpc.add_BillingServiceServicer_to_server,
        api,
        svc.DESCRIPTOR.services_by_name["BillingService"],
    )
