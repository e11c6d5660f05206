"""Billing values → crossdock.billing.v1 messages (and Money both ways)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from crossdock.billing.v1 import billing_pb2 as pb
from crossdock.common.v1 import common_pb2
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from services.billing.domain.documents import CreditNote, Freight, Invoice
from services.billing.domain.invoicing import Line
from services.billing.domain.money import to_decimal, to_units_nanos


def money(amount: Decimal, currency: str) -> common_pb2.Money:
    units, nanos = to_units_nanos(amount)
    return common_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def decimal_of(value: common_pb2.Money) -> Decimal:
    return to_decimal(value.units, value.nanos)


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def party(customer: dict[str, str]) -> common_pb2.PartyRef:
    return json_format.ParseDict(customer, common_pb2.PartyRef())


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
    charge = pb.FreightCharge(
        freight_charge_id=freight.freight_charge_id,
        shipment_id=freight.shipment_id,
        carrier=freight.carrier,
    )
    if freight.quoted is not None:
        charge.quoted_amount.CopyFrom(money(freight.quoted, freight.currency))
    if freight.final is not None:
        charge.final_amount.CopyFrom(money(freight.final, freight.currency))
    if freight.finalized_at is not None:
        charge.finalize_time.CopyFrom(timestamp(freight.finalized_at))
    return charge
