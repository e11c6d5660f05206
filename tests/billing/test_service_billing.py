"""Billing through real NATS and gRPC, on SQLite files and PostgreSQL.

Events are published into JetStream the way their producers' relays would; results are read
through BillingService and from the BILLING stream.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import grpc
import pytest
from crossdock.billing.v1 import billing_pb2 as pb
from crossdock.billing.v1 import billing_service_pb2 as svc
from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc
from crossdock.events.v1 import billing_events_pb2, return_events_pb2
from crossdock.order.v1 import order_pb2
from nats.aio.client import Client as NATS

from services.billing.adapters.contracts import decimal_of
from tests.billing.service_support import (
    delivered,
    eur,
    ids,
    manifested,
    order_placed,
    shipment,
)
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import running_billing
from tests.fixtures.waiting import wait_for

POSTED = "crossdock.billing.invoice_posted.v1"
FINALIZED = "crossdock.billing.freight_charge_finalized.v1"
CREDITED = "crossdock.billing.credit_note_posted.v1"


async def invoices(stub: svc_grpc.BillingServiceStub, partner_id: str = "") -> list[pb.Invoice]:
    answer = await stub.ListInvoices(svc.ListInvoicesRequest(partner_id=partner_id))
    return list(answer.invoices)


def amounts(invoice: pb.Invoice) -> list[tuple[int, int, Decimal]]:
    return [(ln.kind, ln.quantity, decimal_of(ln.amount)) for ln in invoice.lines]


async def test_delivery_posts_one_invoice_with_final_freight(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner, other = ids("ptn"), ids("ptn")
    order_id, shipment_id = ids("ord"), ids("shp")
    ship = shipment(shipment_id, order_id, partner)
    async with running_billing(db_url, nats_server.url) as stub:
        await publish_as_relay(js, order_placed(order_id, partner), order_id)
        await publish_as_relay(js, manifested(ship, eur(5)), shipment_id)
        await publish_as_relay(js, delivered(ship, eur(6, 100_000_000)), shipment_id)
        found = await wait_for(lambda: invoices(stub), lambda got: len(got) == 1)
        assert len(found) == 1
        invoice = found[0]
        # 2 x 12.50 + 3 x 0.10 + freight at the final 6.10 (the quote was 5.00).
        assert amounts(invoice) == [
            (pb.INVOICE_LINE_KIND_GOODS, 2, Decimal("25")),
            (pb.INVOICE_LINE_KIND_GOODS, 3, Decimal("0.3")),
            (pb.INVOICE_LINE_KIND_FREIGHT, 1, Decimal("6.1")),
        ]
        assert decimal_of(invoice.total) == Decimal("31.40")
        assert invoice.invoice_number.endswith("-000001")
        assert invoice.invoice_number.startswith("INV-")
        assert invoice.customer.party_id == "CUST-1"

        posted = await wait_for(
            lambda: stream_messages(nats_client.jetstream(), "BILLING", POSTED),
            lambda got: len(got) == 1,
        )
        event = billing_events_pb2.InvoicePosted.FromString(posted[0].data)
        assert event.invoice.invoice_id == invoice.invoice_id
        finals = await stream_messages(nats_client.jetstream(), "BILLING", FINALIZED)
        assert len(finals) == 1
        charge = billing_events_pb2.FreightChargeFinalized.FromString(finals[0].data)
        assert decimal_of(charge.freight_charge.quoted_amount) == Decimal(5)
        assert decimal_of(charge.freight_charge.final_amount) == Decimal("6.1")

        # The same delivery again, under a new event id: nothing changes.
        await publish_as_relay(js, delivered(ship, eur(6, 100_000_000)), shipment_id)
        marker_order, marker_shipment = ids("ord"), ids("shp")
        marker = shipment(marker_shipment, marker_order, partner)
        await publish_as_relay(js, order_placed(marker_order, partner), marker_order)
        await publish_as_relay(js, delivered(marker, None), marker_shipment)
        # The marker is consumed after the duplicate (same stream, in order).
        found = await wait_for(lambda: invoices(stub), lambda got: len(got) == 2)
        assert sorted(i.shipment_id for i in found) == sorted([shipment_id, marker_shipment])
        posted = await wait_for(
            lambda: stream_messages(nats_client.jetstream(), "BILLING", POSTED),
            lambda got: len(got) == 2,
        )
        assert len(posted) == 2
        assert len(await stream_messages(nats_client.jetstream(), "BILLING", FINALIZED)) == 1

        # Partner scoping: another partner sees nothing, and its Get answers NOT_FOUND.
        got = await stub.GetInvoice(
            svc.GetInvoiceRequest(invoice_id=invoice.invoice_id, partner_id=partner)
        )
        assert got.invoice == invoice
        assert await invoices(stub, other) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetInvoice(
                svc.GetInvoiceRequest(invoice_id=invoice.invoice_id, partner_id=other)
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        # Paging: newest first, one per page.
        first = await stub.ListInvoices(svc.ListInvoicesRequest(partner_id=partner, page_size=1))
        assert first.invoices[0].shipment_id == marker_shipment
        second = await stub.ListInvoices(
            svc.ListInvoicesRequest(
                partner_id=partner, page_size=1, page_token=first.next_page_token
            )
        )
        assert [i.shipment_id for i in second.invoices] == [shipment_id]
        assert second.next_page_token == ""


async def test_delivery_before_order_placed_still_ends_with_one_invoice(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner, order_id, shipment_id = ids("ptn"), ids("ord"), ids("shp")
    ship = shipment(shipment_id, order_id, partner)
    async with running_billing(db_url, nats_server.url) as stub:
        await publish_as_relay(js, delivered(ship, eur(4)), shipment_id)
        await publish_as_relay(js, delivered(ship, eur(4)), shipment_id)  # and a duplicate
        await asyncio.sleep(0.5)  # let the consumer NAK it at least once
        assert await invoices(stub) == []
        await publish_as_relay(js, order_placed(order_id, partner), order_id)
        found = await wait_for(lambda: invoices(stub), lambda got: len(got) == 1)
        assert [decimal_of(i.total) for i in found] == [Decimal("29.30")]
        await asyncio.sleep(0.5)
        assert len(await invoices(stub)) == 1


async def test_on_ship_customer_is_invoiced_at_manifest_whatever_the_partner(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner, order_id, shipment_id = ids("ptn"), ids("ord"), ids("shp")
    ship = shipment(shipment_id, order_id, partner)
    # CUST-1 is the customer of every order the support module places.
    async with running_billing(db_url, nats_server.url, ON_SHIP_CUSTOMERS="CUST-1") as stub:
        # Manifested first: billing waits (NAKs) until it knows the order's customer.
        await publish_as_relay(js, manifested(ship, eur(5)), shipment_id)
        await publish_as_relay(js, order_placed(order_id, partner), order_id)
        found = await wait_for(lambda: invoices(stub), lambda got: len(got) == 1)
        assert [i.shipment_id for i in found] == [shipment_id]
        assert decimal_of(found[0].total) == Decimal("30.30")


async def test_on_ship_partner_is_invoiced_at_manifest_and_returns_credit(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner, order_id, shipment_id = ids("ptn"), ids("ord"), ids("shp")
    ship = shipment(shipment_id, order_id, partner)
    async with running_billing(db_url, nats_server.url, ON_SHIP_PARTNERS=partner) as stub:
        await publish_as_relay(js, order_placed(order_id, partner), order_id)
        await publish_as_relay(js, manifested(ship, eur(5)), shipment_id)
        found = await wait_for(lambda: invoices(stub), lambda got: len(got) == 1)
        assert decimal_of(found[0].total) == Decimal("30.30")
        ret = order_pb2.Return(
            return_id="ret-1",
            order_id=order_id,
            partner_id=partner,
            lines=[
                order_pb2.ReturnLine(order_line_number=1, sku="SKU-A", quantity_received=1),
            ],
        )
        event: Any = return_events_pb2.ReturnReceived(order_return=ret, receipt_id="rcpt-1")
        await publish_as_relay(js, event, "ret-1")
        await publish_as_relay(js, event, "ret-1")  # a duplicate under a new event id

        async def notes() -> list[pb.CreditNote]:
            answer = await stub.ListCreditNotes(svc.ListCreditNotesRequest(partner_id=partner))
            return list(answer.credit_notes)

        credit = await wait_for(notes, lambda got: len(got) == 1)
        assert len(credit) == 1
        assert credit[0].invoice_id == found[0].invoice_id
        assert credit[0].credit_note_number.endswith("-000001")
        assert decimal_of(credit[0].total) == Decimal("12.5")
        posted = await wait_for(
            lambda: stream_messages(nats_client.jetstream(), "BILLING", CREDITED),
            lambda got: len(got) == 1,
        )
        assert len(posted) == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCreditNote(
                svc.GetCreditNoteRequest(
                    credit_note_id=credit[0].credit_note_id, partner_id=ids("ptn")
                )
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
