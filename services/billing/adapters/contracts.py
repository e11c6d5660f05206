"""Billing values <-> crossdock contracts, and billing's one EventMapper.

Outbound: documents -> crossdock.billing.v1 messages (RPC answers and event payloads), and
domain events -> crossdock.events.v1 messages (`mapper`, which `uow.publish` goes through).
Inbound: the parts of the events billing consumes -> domain values.
"""

from __future__ import annotations

from decimal import Decimal

from crossdock.billing.v1 import billing_pb2 as pb
from crossdock.common.v1 import common_pb2
from crossdock.events.v1 import billing_events_pb2 as events_pb
from crossdock.order.v1 import order_pb2
from crossdock.shipment.v1 import shipment_pb2
from google.protobuf import json_format

from services.billing.adapters.store import SERVICE
from services.billing.domain.documents import CreditNote, Freight, Invoice, OrderPrices
from services.billing.domain.events import CreditNotePosted, FreightChargeFinalized, InvoicePosted
from services.billing.domain.invoicing import Line, OrderLinePrice, ShippedItem
from services.kit.proto_values import money_to_proto, timestamp
from services.kit.uow import EventMapper, Mapped
from services.kit.values import Money, to_decimal

mapper = EventMapper(SERVICE)


# -- money and parties ---------------------------------------------------------------------


def money(amount: Decimal, currency: str) -> common_pb2.Money:
    return money_to_proto(Money(currency, amount))


def decimal_of(value: common_pb2.Money) -> Decimal:
    return to_decimal(value.units, value.nanos)


def party(customer: dict[str, str]) -> common_pb2.PartyRef:
    return json_format.ParseDict(customer, common_pb2.PartyRef())


# -- documents -> crossdock.billing.v1 -----------------------------------------------------


def line_to_proto(line: Line, currency: str) -> pb.InvoiceLine:
    return pb.InvoiceLine(
        line_number=line.line_number,
        kind=int(line.kind),  # type: ignore[arg-type]
        order_line_number=line.order_line_number,
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        unit_price=money(line.unit_price, currency),
        amount=money(line.amount, currency),
    )


def invoice_to_proto(invoice: Invoice) -> pb.Invoice:
    return pb.Invoice(
        invoice_id=invoice.invoice_id,
        invoice_number=invoice.invoice_number,
        series=invoice.series,
        order_id=invoice.order_id,
        shipment_id=invoice.shipment_id,
        partner_id=invoice.partner_id,
        customer=party(invoice.customer),
        status=pb.INVOICE_STATUS_CREDITED if invoice.credited else pb.INVOICE_STATUS_POSTED,
        lines=[line_to_proto(line, invoice.currency) for line in invoice.lines],
        total=money(invoice.total, invoice.currency),
        post_time=timestamp(invoice.posted_at),
    )


def credit_note_to_proto(note: CreditNote) -> pb.CreditNote:
    return pb.CreditNote(
        credit_note_id=note.credit_note_id,
        credit_note_number=note.credit_note_number,
        invoice_id=note.invoice_id,
        order_id=note.order_id,
        return_id=note.return_id,
        partner_id=note.partner_id,
        lines=[line_to_proto(line, note.currency) for line in note.lines],
        total=money(note.total, note.currency),
        reason=note.reason,
        post_time=timestamp(note.posted_at),
    )


def freight_to_proto(freight: Freight) -> pb.FreightCharge:
    return pb.FreightCharge(
        freight_charge_id=freight.freight_charge_id,
        shipment_id=freight.shipment_id,
        carrier=freight.carrier,
        quoted_amount=None if freight.quoted is None else money(freight.quoted, freight.currency),
        final_amount=None if freight.final is None else money(freight.final, freight.currency),
        finalize_time=timestamp(freight.finalized_at),
    )


# -- domain events -> crossdock.events.v1 (the one event mapper) ---------------------------


@mapper.maps(InvoicePosted)
def _invoice_posted(event: InvoicePosted) -> Mapped:
    message = events_pb.InvoicePosted(
        invoice=invoice_to_proto(event.invoice), occur_time=timestamp(event.occurred_at)
    )
    return message, event.invoice.invoice_id


@mapper.maps(CreditNotePosted)
def _credit_note_posted(event: CreditNotePosted) -> Mapped:
    message = events_pb.CreditNotePosted(
        credit_note=credit_note_to_proto(event.credit_note),
        occur_time=timestamp(event.occurred_at),
    )
    return message, event.credit_note.credit_note_id


@mapper.maps(FreightChargeFinalized)
def _freight_charge_finalized(event: FreightChargeFinalized) -> Mapped:
    freight = event.freight
    message = events_pb.FreightChargeFinalized(
        freight_charge=freight_to_proto(freight),
        order_id=freight.order_id,
        partner_id=freight.partner_id,
        occur_time=timestamp(event.occurred_at),
    )
    return message, freight.shipment_id


# -- consumed events' parts -> domain values -----------------------------------------------


def order_prices(order: order_pb2.Order) -> OrderPrices:
    """What billing keeps of a placed order: who pays and each line's unit price."""
    lines = {
        line.line_number: OrderLinePrice(line.line_number, line.sku, decimal_of(line.unit_price))
        for line in order.lines
    }
    customer = json_format.MessageToDict(order.customer, preserving_proto_field_name=True)
    return OrderPrices(order.order_id, order.partner_id, customer, order.currency_code, lines)


def shipped_items(shipment: shipment_pb2.Shipment) -> tuple[ShippedItem, ...]:
    """Every package item of the shipment (an order line may span packages)."""
    return tuple(
        ShippedItem(item.order_line_number, item.sku, item.quantity)
        for package in shipment.packages
        for item in package.items
    )


def returned_items(order_return: order_pb2.Return) -> tuple[ShippedItem, ...]:
    return tuple(
        ShippedItem(line.order_line_number, line.sku, line.quantity_received)
        for line in order_return.lines
    )
