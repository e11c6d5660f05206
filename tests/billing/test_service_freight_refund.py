"""Freight refunded on returns, by policy: billing through real NATS and gRPC, on SQLite files
and PostgreSQL.

Returns are published as the order service's relay would (`crossdock.return.received.v1`);
credit notes are read through BillingService and from the BILLING stream.
"""

from __future__ import annotations

from decimal import Decimal

from crossdock.billing.v1 import billing_pb2 as pb
from crossdock.billing.v1 import billing_service_pb2 as svc
from crossdock.billing.v1 import billing_service_pb2_grpc as svc_grpc
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import billing_events_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.billing.adapters.contracts import decimal_of
from tests.billing.service_support import (
    delivered,
    eur,
    ids,
    order_placed,
    return_received,
    shipment,
)
from tests.fixtures.events import publish_as_relay, stream_messages
from tests.fixtures.nats import NatsServer
from tests.fixtures.running import running_billing
from tests.fixtures.waiting import wait_for

CREDITED = "crossdock.billing.credit_note_posted.v1"


async def credit_notes(stub: svc_grpc.BillingServiceStub, order_id: str) -> list[pb.CreditNote]:
    """The order's credit notes, oldest first."""
    answer = await stub.ListCreditNotes(svc.ListCreditNotesRequest(order_id=order_id))
    return list(reversed(answer.credit_notes))


def freight_refunded(note: pb.CreditNote) -> Decimal:
    lines = [x for x in note.lines if x.kind == pb.INVOICE_LINE_KIND_FREIGHT]
    assert len(lines) <= 1, note
    return sum((decimal_of(x.amount) for x in lines), Decimal(0))


async def invoiced(
    stub: svc_grpc.BillingServiceStub,
    js: JetStreamContext,
    partner: str,
    freight: common_pb2.Money,
) -> pb.Invoice:
    """A placed and delivered order (2 x SKU-A at 12.50, 3 x SKU-B at 0.10), and its invoice."""
    order_id, shipment_id = ids("ord"), ids("shp")
    await publish_as_relay(js, order_placed(order_id, partner), order_id)
    ship = shipment(shipment_id, order_id, partner)
    await publish_as_relay(js, delivered(ship, freight), shipment_id)

    async def found() -> list[pb.Invoice]:
        answer = await stub.ListInvoices(svc.ListInvoicesRequest(order_id=order_id))
        return list(answer.invoices)

    invoices = await wait_for(found, lambda got: len(got) == 1)
    assert len(invoices) == 1
    return invoices[0]


async def credited(
    stub: svc_grpc.BillingServiceStub,
    js: JetStreamContext,
    invoice: pb.Invoice,
    received: dict[int, int],
    count: int,
) -> list[pb.CreditNote]:
    """Publish a return of `received` units and wait until the order has `count` credit notes."""
    return_id = ids("ret")
    event = return_received(return_id, invoice.order_id, invoice.partner_id, received)
    await publish_as_relay(js, event, return_id)
    notes = await wait_for(
        lambda: credit_notes(stub, invoice.order_id), lambda got: len(got) >= count
    )
    assert len(notes) == count, notes
    assert notes[-1].return_id == return_id
    return notes


async def test_proportional_refunds_over_partial_returns_add_up_to_the_freight(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    partner = ids("ptn")
    env = {"RETURN_FREIGHT_REFUND": "proportional"}
    async with running_billing(db_url, nats_server.url, **env) as stub:
        invoice = await invoiced(stub, js, partner, eur(6, 110_000_000))  # 5 units, 6.11 freight

        # 1 of 5 units: 6.11 / 5 = 1.222, rounded down to 1.22.
        notes = await credited(stub, js, invoice, {1: 1}, 1)
        assert freight_refunded(notes[0]) == Decimal("1.22")
        assert decimal_of(notes[0].total) == Decimal("13.72")
        last = notes[0].lines[-1]
        assert (last.line_number, last.kind, last.quantity) == (
            2,
            pb.INVOICE_LINE_KIND_FREIGHT,
            1,
        )

        # 3 of 5 units credited in all: 3.666 rounds down to 3.66, of which 1.22 is refunded.
        second_return = ids("ret")
        event = return_received(second_return, invoice.order_id, partner, {2: 2})
        await publish_as_relay(js, event, second_return)
        await publish_as_relay(js, event, second_return)  # redelivered under a new event id
        notes = await wait_for(
            lambda: credit_notes(stub, invoice.order_id), lambda got: len(got) >= 2
        )
        assert freight_refunded(notes[1]) == Decimal("2.44")

        # The last 2 units: the remainder, 6.11 - 3.66. Consumed after the duplicate above.
        notes = await credited(stub, js, invoice, {1: 1, 2: 1}, 3)
        assert freight_refunded(notes[2]) == Decimal("2.45")
        assert decimal_of(notes[2].total) == Decimal("12.50") + Decimal("0.10") + Decimal("2.45")
        assert sum(freight_refunded(note) for note in notes) == Decimal("6.11")

        # Everything is credited: another return of the same units posts nothing.
        late_return = ids("ret")
        event = return_received(late_return, invoice.order_id, partner, {1: 1})
        await publish_as_relay(js, event, late_return)
        # (the marker: a later order's credit note, consumed after that return)
        marker = await invoiced(stub, js, partner, eur(3))
        await credited(stub, js, marker, {1: 2, 2: 3}, 1)
        notes = await credit_notes(stub, invoice.order_id)
        assert len(notes) == 3

        marker_notes = await credit_notes(stub, marker.order_id)
        numbers = sorted(n.credit_note_number for n in [*notes, *marker_notes])
        assert [int(n.rsplit("-", 1)[1]) for n in numbers] == [1, 2, 3, 4]
        assert all(n.invoice_id == invoice.invoice_id for n in notes)
        posted = await wait_for(
            lambda: stream_messages(nats_client.jetstream(), "BILLING", CREDITED),
            lambda got: len(got) == 4,
        )
        events = [billing_events_pb2.CreditNotePosted.FromString(m.data) for m in posted]
        assert sorted(e.credit_note.credit_note_number for e in events) == numbers
        by_id = {e.credit_note.credit_note_id: e.credit_note for e in events}
        assert [freight_refunded(by_id[n.credit_note_id]) for n in notes] == [
            Decimal("1.22"),
            Decimal("2.44"),
            Decimal("2.45"),
        ]


async def test_full_refund_per_partner_comes_on_the_note_that_completes_the_invoice(
    db_url: str, nats_server: NatsServer, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    full_partner, other = ids("ptn"), ids("ptn")
    env = {"RETURN_FREIGHT_REFUND_BY_PARTNER": f"{full_partner}=full"}  # everyone else: none
    async with running_billing(db_url, nats_server.url, **env) as stub:
        invoice = await invoiced(stub, js, full_partner, eur(5))

        notes = await credited(stub, js, invoice, {1: 1}, 1)
        assert freight_refunded(notes[0]) == 0
        assert [x.kind for x in notes[0].lines] == [pb.INVOICE_LINE_KIND_GOODS]

        # More than is left is returned: only what was invoiced is credited, plus all the freight.
        notes = await credited(stub, js, invoice, {1: 3, 2: 3}, 2)
        assert [(x.kind, x.quantity) for x in notes[1].lines] == [
            (pb.INVOICE_LINE_KIND_GOODS, 1),
            (pb.INVOICE_LINE_KIND_GOODS, 3),
            (pb.INVOICE_LINE_KIND_FREIGHT, 1),
        ]
        assert freight_refunded(notes[1]) == Decimal(5)
        assert decimal_of(notes[1].total) == Decimal("17.80")

        # Another partner keeps the default: a whole return refunds no freight.
        theirs = await invoiced(stub, js, other, eur(5))
        notes = await credited(stub, js, theirs, {1: 2, 2: 3}, 1)
        assert freight_refunded(notes[0]) == 0
        assert decimal_of(notes[0].total) == Decimal("25.30")
        assert notes[0].credit_note_number.endswith("-000003")
