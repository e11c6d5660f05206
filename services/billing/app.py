"""Billing's use cases, one function per command, each in the caller's unit of work.

Posting a document numbers it, stores it and publishes its domain event in one transaction, so
the number, the document, the outbox row (and a consumer's inbox row) commit together or not at
all (the transactional outbox). The consumers call these on their batch transaction
(`UnitOfWork.of(conn)`); the gRPC servicer runs the reads through `UnitsOfWork`.

Inputs can arrive out of order (a shipment before its OrderPlaced, a return before its invoice):
the use case then raises PricesMissing, an ordinary exception, so the kit NAKs with backoff and
the redelivery finds the data. Duplicates are stopped by the kit's inbox (same event id) and by
UNIQUE keys plus existence checks (the same fact under another event id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from services.billing.adapters.store import repository as repo
from services.billing.domain import freight_refund, invoicing
from services.billing.domain.documents import CreditNote, Freight, Invoice, OrderPrices
from services.billing.domain.events import CreditNotePosted, FreightChargeFinalized, InvoicePosted
from services.kit.errors import NotFound
from services.kit.ids import resource_id
from services.kit.uow import UnitOfWork


@dataclass(frozen=True)
class BillingSettings:
    invoice_series: str = "INV"
    credit_note_series: str = "CRN"
    on_ship_partners: frozenset[str] = frozenset()
    on_ship_customers: frozenset[str] = frozenset()
    return_freight_refund: freight_refund.FreightRefund = freight_refund.FreightRefund.NONE
    # Partner id -> its own policy, overriding return_freight_refund.
    return_freight_refund_by_partner: Mapping[str, freight_refund.FreightRefund] = field(
        default_factory=dict
    )


# -- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentFacts:
    """What billing reads of a shipment: whose it is and what it carries."""

    shipment_id: str
    order_id: str
    partner_id: str
    carrier: str
    shipped: tuple[invoicing.ShippedItem, ...]


@dataclass(frozen=True)
class RecordManifest:
    """A shipment was manifested at a quoted freight charge."""

    shipment: ShipmentFacts
    quote: Decimal
    quote_currency: str


@dataclass(frozen=True)
class RecordDelivery:
    """A shipment was delivered; the carrier's final charge when it is known."""

    shipment: ShipmentFacts
    final_charge: Decimal | None
    final_currency: str


@dataclass(frozen=True)
class CreditReturn:
    """Returned units were received: credit them on the invoices that billed them."""

    order_id: str
    return_id: str
    receipt_id: str
    returned: tuple[invoicing.ShippedItem, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DocumentQuery:
    """A page of a partner's (or every partner's, when empty) documents, newest first."""

    partner_id: str
    order_id: str
    page_token: str
    page_size: int
    # Only the invoices of these shipments (credit notes ignore it); empty: every shipment's.
    shipment_ids: tuple[str, ...] = ()
    # Only the documents of these orders; empty: every order's.
    order_ids: tuple[str, ...] = ()


# -- event-driven use cases ----------------------------------------------------------------


def record_order_prices(uow: UnitOfWork, prices: OrderPrices) -> None:
    """Remember who pays an order and its unit prices (the first OrderPlaced wins)."""
    repo.save_prices(uow.conn, prices)


def record_manifest(
    uow: UnitOfWork, command: RecordManifest, settings: BillingSettings, now: datetime
) -> Invoice | None:
    """Keep the freight quote; post the invoice now when the partner or customer bills on ship."""
    conn = uow.conn
    shipment = command.shipment
    existing = repo.get_freight(conn, shipment.shipment_id)
    if existing is None:
        repo.save_freight(
            conn,
            Freight(
                resource_id("frt"),
                shipment.shipment_id,
                shipment.order_id,
                shipment.partner_id,
                shipment.carrier,
                command.quote_currency,
                command.quote,
                None,
                None,
            ),
        )
    elif existing.quoted is None:
        repo.save_freight(conn, replace(existing, quoted=command.quote))
    # The customer's policy needs the order (OrderPlaced may still be on its way: NAK).
    prices = _prices(uow, shipment.order_id) if settings.on_ship_customers else None
    customer = str(prices.customer.get("party_id", "")) if prices else ""
    policy = invoicing.policy_for(
        shipment.partner_id, settings.on_ship_partners, customer, settings.on_ship_customers
    )
    if policy is not invoicing.InvoicePolicy.ON_SHIP:
        return None
    return post_invoice(
        uow,
        settings,
        prices or _prices(uow, shipment.order_id),
        shipment.shipment_id,
        shipment.shipped,
        command.quote,
        now,
    )


def record_delivery(
    uow: UnitOfWork, command: RecordDelivery, settings: BillingSettings, now: datetime
) -> Invoice | None:
    """Record the final freight charge the first time it is known, then post the invoice."""
    shipment = command.shipment
    prices = _prices(uow, shipment.order_id)
    freight = repo.get_freight(uow.conn, shipment.shipment_id)
    final = command.final_charge
    if final is not None and (freight is None or freight.final is None):
        base = freight or Freight(
            resource_id("frt"),
            shipment.shipment_id,
            shipment.order_id,
            shipment.partner_id,
            shipment.carrier,
            command.final_currency or prices.currency,
            None,
            None,
            None,
        )
        freight = replace(base, final=final, finalized_at=now)
        finalize_freight(uow, freight, now)
    amount, _ = invoicing.freight_to_bill(
        freight.quoted if freight else None, freight.final if freight else None
    )
    return post_invoice(uow, settings, prices, shipment.shipment_id, shipment.shipped, amount, now)


def credit_return(
    uow: UnitOfWork, command: CreditReturn, settings: BillingSettings, now: datetime
) -> list[CreditNote]:
    """Post a credit note per invoice the returned lines were billed on."""
    reason = "; ".join(sorted({r for r in command.reasons if r})) or "return received"
    return post_credit_notes(
        uow,
        settings,
        command.order_id,
        command.return_id,
        command.receipt_id,
        list(command.returned),
        reason,
        now,
    )


# -- posting -------------------------------------------------------------------------------


def _prices(uow: UnitOfWork, order_id: str) -> OrderPrices:
    prices = repo.get_prices(uow.conn, order_id)
    if prices is None:
        raise invoicing.PricesMissing(f"order {order_id} not placed yet (prices unknown)")
    return prices


def post_invoice(
    uow: UnitOfWork,
    settings: BillingSettings,
    prices: OrderPrices,
    shipment_id: str,
    shipped: Iterable[invoicing.ShippedItem],
    freight: Decimal,
    now: datetime,
) -> Invoice | None:
    """Post the shipment's invoice unless it exists; raises PricesMissing (transient)."""
    conn = uow.conn
    if repo.has_invoice_for_shipment(conn, shipment_id):
        return None  # one invoice per shipment: a redelivery or a second trigger is a no-op
    lines = invoicing.invoice_lines(prices.lines, shipped, freight)
    counter = f"{settings.invoice_series}-{now.year}"
    number = repo.next_number(conn, counter)
    invoice = Invoice(
        invoice_id=resource_id("inv"),
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
    uow.publish(InvoicePosted(invoice, now))
    return invoice


def finalize_freight(uow: UnitOfWork, freight: Freight, now: datetime) -> None:
    """Store the final charge; announce it when it differs from the quote."""
    repo.save_freight(uow.conn, freight)
    if freight.quoted is not None and freight.final is not None and freight.final != freight.quoted:
        uow.publish(FreightChargeFinalized(freight, now))


def post_credit_notes(
    uow: UnitOfWork,
    settings: BillingSettings,
    order_id: str,
    return_id: str,
    receipt_id: str,
    returned: list[invoicing.ShippedItem],
    reason: str,
    now: datetime,
) -> list[CreditNote]:
    """One credit note per invoice the returned lines were billed on; raises PricesMissing.

    Each note credits the returned units at their invoiced prices and, by the partner's freight
    refund policy, part or all of the invoice's freight on a line of its own.
    """
    conn = uow.conn
    invoices = repo.invoices_for_order(conn, order_id)
    # Each returned order line is credited against the first invoice that billed it.
    groups: dict[str, list[invoicing.ShippedItem]] = {}
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
        groups.setdefault(owner.invoice_id, []).append(item)
    notes: list[CreditNote] = []
    # In invoice order, so concurrent returns lock the invoices they share in the same order.
    for invoice in (inv for inv in invoices if inv.invoice_id in groups):
        # Credits of one invoice serialize here, so each sees what the previous one credited.
        repo.lock_invoice(conn, invoice.invoice_id)
        source_key = f"{return_id}:{receipt_id}:{invoice.invoice_id}"
        if repo.credit_note_exists(conn, source_key):
            continue
        earlier = [
            line
            for note in repo.credit_notes_for_invoice(conn, invoice.invoice_id)
            for line in note.lines
        ]
        credited: dict[int, int] = {}
        for line in earlier:
            if line.kind is invoicing.LineKind.GOODS:
                number = line.order_line_number
                credited[number] = credited.get(number, 0) + line.quantity
        lines = invoicing.credit_lines(invoice.lines, groups[invoice.invoice_id], credited)
        if not lines:
            continue  # everything returned here was credited already
        policy = freight_refund.refund_policy_for(
            invoice.partner_id,
            settings.return_freight_refund,
            settings.return_freight_refund_by_partner,
        )
        refund = freight_refund.freight_refund(
            policy, invoice.lines, earlier, lines, invoice.currency
        )
        lines = freight_refund.with_freight_refund(lines, refund)
        counter = f"{settings.credit_note_series}-{now.year}"
        number = repo.next_number(conn, counter)
        note = CreditNote(
            credit_note_id=resource_id("crn"),
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
        uow.publish(CreditNotePosted(note, now))
        notes.append(note)
    return notes


# -- reads (BillingService) ----------------------------------------------------------------
# partner_id scopes a read: another partner's document answers NOT_FOUND, exactly like a
# missing one, so ids of other partners cannot be probed.


def get_invoice(uow: UnitOfWork, invoice_id: str, partner_id: str) -> Invoice:
    invoice = repo.get_invoice(uow.conn, invoice_id)
    if invoice is None or (partner_id and invoice.partner_id != partner_id):
        raise NotFound(
            f"invoice {invoice_id} not found", resource_type="invoice", resource_name=invoice_id
        )
    return invoice


def list_invoices(uow: UnitOfWork, query: DocumentQuery) -> tuple[list[Invoice], str]:
    """One page of invoices and the next page's token ("" on the last page)."""
    return repo.list_invoices(
        uow.conn,
        query.partner_id,
        query.order_id,
        query.page_token,
        query.page_size,
        shipment_ids=query.shipment_ids,
        order_ids=query.order_ids,
    )


def get_credit_note(uow: UnitOfWork, credit_note_id: str, partner_id: str) -> CreditNote:
    note = repo.get_credit_note(uow.conn, credit_note_id)
    if note is None or (partner_id and note.partner_id != partner_id):
        raise NotFound(
            f"credit note {credit_note_id} not found",
            resource_type="credit_note",
            resource_name=credit_note_id,
        )
    return note


def list_credit_notes(uow: UnitOfWork, query: DocumentQuery) -> tuple[list[CreditNote], str]:
    """One page of credit notes and the next page's token ("" on the last page)."""
    return repo.list_credit_notes(
        uow.conn,
        query.partner_id,
        query.order_id,
        query.page_token,
        query.page_size,
        order_ids=query.order_ids,
    )
