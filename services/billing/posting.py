"""Posting a document: number it, store it and append its event, all in the caller's transaction.

Called by the consumers on the batch transaction's connection, so the number, the document, the
outbox row and the inbox row commit together or not at all (DESIGN.md, "Publishing").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from crossdock.events.v1 import billing_events_pb2 as events_pb
from sqlalchemy import Connection

from services.billing.api import mapping
from services.billing.domain import invoicing
from services.billing.domain.documents import CreditNote, Freight, Invoice, OrderPrices
from services.billing.domain.ids import new_id
from services.billing.store import repository as repo
from services.kit import outbox


@dataclass(frozen=True)
class BillingSettings:
    invoice_series: str = "INV"
    credit_note_series: str = "CRN"
    on_ship_partners: frozenset[str] = frozenset()
    on_ship_customers: frozenset[str] = frozenset()


def post_invoice(
    conn: Connection,
    settings: BillingSettings,
    prices: OrderPrices,
    shipment_id: str,
    shipped: Iterable[invoicing.ShippedItem],
    freight: Decimal,
    now: datetime,
    correlation_id: str,
) -> Invoice | None:
    """Post the shipment's invoice unless it exists; raises PricesMissing (transient)."""
    if repo.invoice_for_shipment(conn, shipment_id) is not None:
        return None  # one invoice per shipment: a redelivery or a second trigger is a no-op
    lines = invoicing.invoice_lines(prices.lines, shipped, freight)
    counter = f"{settings.invoice_series}-{now.year}"
    number = repo.next_number(conn, counter)
    invoice = Invoice(
        invoice_id=new_id("inv"),
        invoice_number=invoicing.format_number(settings.invoice_series, now.year, number),
        series=counter,
        order_id=prices.order_id,
        shipment_id=shipment_id,
        partner_id=prices.partner_id,
        customer=prices.customer,
        currency=prices.currency,
        lines=tuple(lines),
        total=invoicing.total(lines),
        posted_at=now,
    )
    repo.insert_invoice(conn, invoice)
    message = events_pb.InvoicePosted(
        invoice=mapping.invoice_to_proto(invoice), occur_time=mapping.timestamp(now)
    )
    outbox.append(conn, message, invoice.invoice_id, correlation_id=correlation_id)
    return invoice


def finalize_freight(
    conn: Connection, freight: Freight, now: datetime, correlation_id: str
) -> None:
    """Store the final charge; announce it when it differs from the quote."""
    repo.save_freight(conn, freight)
    if freight.quoted is not None and freight.final is not None and freight.final != freight.quoted:
        message = events_pb.FreightChargeFinalized(
            freight_charge=mapping.freight_to_proto(freight),
            order_id=freight.order_id,
            partner_id=freight.partner_id,
            occur_time=mapping.timestamp(now),
        )
        outbox.append(conn, message, freight.shipment_id, correlation_id=correlation_id)


def post_credit_notes(
    conn: Connection,
    settings: BillingSettings,
    order_id: str,
    return_id: str,
    receipt_id: str,
    returned: list[invoicing.ShippedItem],
    reason: str,
    now: datetime,
    correlation_id: str,
) -> list[CreditNote]:
    """One credit note per invoice the returned lines were billed on; raises PricesMissing."""
    invoices = repo.invoices_for_order(conn, order_id)
    # Each returned order line is credited against the first invoice that billed it.
    groups: dict[str, tuple[Invoice, list[invoicing.ShippedItem]]] = {}
    for item in returned:
        if item.quantity <= 0:
            continue
        owner = next(
            (
                inv
                for inv in invoices
                if any(line.order_line_number == item.order_line_number for line in inv.lines)
            ),
            None,
        )
        if owner is None:
            raise invoicing.PricesMissing(f"order line {item.order_line_number} not invoiced yet")
        groups.setdefault(owner.invoice_id, (owner, []))[1].append(item)
    notes: list[CreditNote] = []
    for invoice, items in groups.values():
        source_key = f"{return_id}:{receipt_id}:{invoice.invoice_id}"
        if repo.credit_note_exists(conn, source_key):
            continue
        credited: dict[int, int] = {}
        for earlier in repo.credit_notes_for_invoice(conn, invoice.invoice_id):
            for line in earlier.lines:
                number = line.order_line_number
                credited[number] = credited.get(number, 0) + line.quantity
        lines = invoicing.credit_lines(invoice.lines, items, credited)
        if not lines:
            continue  # everything returned here was credited already
        counter = f"{settings.credit_note_series}-{now.year}"
        number = repo.next_number(conn, counter)
        note = CreditNote(
            credit_note_id=new_id("crn"),
            credit_note_number=invoicing.format_number(
                settings.credit_note_series, now.year, number
            ),
            invoice_id=invoice.invoice_id,
            order_id=order_id,
            return_id=return_id,
            partner_id=invoice.partner_id,
            currency=invoice.currency,
            lines=tuple(lines),
            total=invoicing.total(lines),
            reason=reason,
            posted_at=now,
        )
        repo.insert_credit_note(conn, note, source_key)
        message = events_pb.CreditNotePosted(
            credit_note=mapping.credit_note_to_proto(note), occur_time=mapping.timestamp(now)
        )
        outbox.append(conn, message, note.credit_note_id, correlation_id=correlation_id)
        notes.append(note)
    return notes
