"""Billing's queries, on the unit of work's connection: prepared statements (`statements`) on
the raw cursor, SQLAlchemy Core for the pages built per call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from services.billing.adapters.store import statements as sql
from services.billing.adapters.store import tables as t
from services.billing.domain.documents import CreditNote, Freight, Invoice, OrderPrices
from services.billing.domain.invoicing import Line, LineKind, OrderLinePrice
from services.kit.paging import keyset, next_page

POSTED, CREDITED = 1, 2  # crossdock.billing.v1.InvoiceStatus


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _lines_json(lines: tuple[Line, ...] | list[Line]) -> str:
    return json.dumps(
        [
            [
                x.line_number,
                int(x.kind),
                x.order_line_number,
                x.sku,
                x.description,
                x.quantity,
                str(x.unit_price),
            ]
            for x in lines
        ]
    )


def _lines(raw: str) -> tuple[Line, ...]:
    return tuple(
        Line(n, LineKind(k), o, s, d, q, Decimal(p)) for n, k, o, s, d, q, p in json.loads(raw)
    )


# -- order price cache ---------------------------------------------------------------------


def save_prices(conn: Connection, prices: OrderPrices) -> None:
    """First OrderPlaced wins; a redelivery finds the row and changes nothing."""
    lines = {n: [p.sku, str(p.unit_price)] for n, p in prices.lines.items()}
    sql.NEW_PRICES.run(
        conn,
        {
            "order_id": prices.order_id,
            "partner_id": prices.partner_id,
            "customer": json.dumps(prices.customer),
            "currency": prices.currency,
            "lines": json.dumps(lines),
        },
    )


def get_prices(conn: Connection, order_id: str) -> OrderPrices | None:
    row = sql.PRICES.run(conn, {"order_id": order_id}).first()
    if row is None:
        return None
    lines = {
        int(n): OrderLinePrice(int(n), sku, Decimal(price))
        for n, (sku, price) in json.loads(row.lines).items()
    }
    return OrderPrices(row.order_id, row.partner_id, json.loads(row.customer), row.currency, lines)


# -- freight -------------------------------------------------------------------------------


def get_freight(conn: Connection, shipment_id: str) -> Freight | None:
    row = sql.FREIGHT.run(conn, {"shipment_id": shipment_id}).first()
    if row is None:
        return None
    return Freight(
        row.freight_charge_id,
        row.shipment_id,
        row.order_id,
        row.partner_id,
        row.carrier,
        row.currency,
        _dec(row.quoted_amount),
        _dec(row.final_amount),
        _ts(row.finalized_at),
    )


def save_freight(conn: Connection, freight: Freight) -> None:
    """Insert or overwrite the shipment's freight row (quote first, final later)."""
    values: dict[str, Any] = {
        "shipment_id": freight.shipment_id,
        "freight_charge_id": freight.freight_charge_id,
        "order_id": freight.order_id,
        "partner_id": freight.partner_id,
        "carrier": freight.carrier,
        "currency": freight.currency,
        "quoted_amount": None if freight.quoted is None else str(freight.quoted),
        "final_amount": None if freight.final is None else str(freight.final),
        "finalized_at": None if freight.finalized_at is None else freight.finalized_at.timestamp(),
    }
    sql.UPSERT_FREIGHT.run(conn, values)


# -- gapless number series -----------------------------------------------------------------


def next_number(conn: Connection, series: str) -> int:
    """Take the next value of `series` inside the caller's transaction.

    The upsert creates the series at 1 or bumps it, locking the counter row on PostgreSQL until
    commit, so concurrent postings queue on it; on SQLite the single writer (BEGIN IMMEDIATE)
    serialises them. A rolled-back or crashed transaction rolls the increment back with the
    document: no gaps, no duplicates.
    """
    return int(sql.NEXT_NUMBER.run(conn, {"s": series}).scalar_one())


# -- invoices ------------------------------------------------------------------------------


def insert_invoice(conn: Connection, invoice: Invoice) -> None:
    sql.INSERT_INVOICE.run(
        conn,
        {
            "invoice_id": invoice.invoice_id,
            "invoice_number": invoice.invoice_number,
            "series": invoice.series,
            "order_id": invoice.order_id,
            "shipment_id": invoice.shipment_id,
            "partner_id": invoice.partner_id,
            "customer": json.dumps(invoice.customer),
            "currency": invoice.currency,
            "status": POSTED,
            "lines": _lines_json(invoice.lines),
            "total": str(invoice.total),
            "posted_at": invoice.posted_at.timestamp(),
        },
    )


def _invoice(row: Any) -> Invoice:
    return Invoice(
        row.invoice_id,
        row.invoice_number,
        row.series,
        row.order_id,
        row.shipment_id,
        row.partner_id,
        json.loads(row.customer),
        row.currency,
        _lines(row.lines),
        Decimal(row.total),
        datetime.fromtimestamp(row.posted_at, UTC),
        row.status == CREDITED,
    )


def has_invoice_for_shipment(conn: Connection, shipment_id: str) -> bool:
    """Whether the shipment is invoiced (without reading the invoice)."""
    return sql.INVOICE_OF_SHIPMENT.run(conn, {"shipment_id": shipment_id}).first() is not None


def get_invoice(conn: Connection, invoice_id: str) -> Invoice | None:
    row = sql.INVOICE.run(conn, {"invoice_id": invoice_id}).first()
    return None if row is None else _invoice(row)


def lock_invoice(conn: Connection, invoice_id: str) -> None:
    """Hold the invoice's row until commit (PostgreSQL; SQLite has a single writer anyway)."""
    sql.LOCK_INVOICE.run(conn, {"invoice_id": invoice_id})


def invoices_for_order(conn: Connection, order_id: str) -> list[Invoice]:
    rows = sql.INVOICES_OF_ORDER.run(conn, {"order_id": order_id}).all()
    return [_invoice(row) for row in rows]


def list_invoices(
    conn: Connection,
    partner_id: str,
    order_id: str,
    page_token: str,
    size: int,
    *,
    shipment_ids: Sequence[str] = (),
    order_ids: Sequence[str] = (),
) -> tuple[list[Invoice], str]:
    """Newest first (by seq), keyset-paged: one page and the next page's token. With
    `shipment_ids` or `order_ids`, only those shipments' or orders' invoices (one statement: an
    IN list, at most 500)."""
    c = t.invoices.c
    query = select(t.invoices)
    if partner_id:
        query = query.where(c.partner_id == partner_id)
    if order_id:
        query = query.where(c.order_id == order_id)
    if shipment_ids:
        query = query.where(c.shipment_id.in_(shipment_ids))
    if order_ids:
        query = query.where(c.order_id.in_(order_ids))
    rows = conn.execute(keyset(query, c.seq, page_token, size, descending=True)).all()
    page, token = next_page(rows, size, key=lambda row: int(row.seq))
    return [_invoice(row) for row in page], token


# -- credit notes --------------------------------------------------------------------------


def credit_note_exists(conn: Connection, source_key: str) -> bool:
    found = sql.CREDIT_NOTE_OF_SOURCE.run(conn, {"source_key": source_key}).first()
    return found is not None


def insert_credit_note(conn: Connection, note: CreditNote, source_key: str) -> None:
    sql.INSERT_CREDIT_NOTE.run(
        conn,
        {
            "credit_note_id": note.credit_note_id,
            "credit_note_number": note.credit_note_number,
            "invoice_id": note.invoice_id,
            "order_id": note.order_id,
            "return_id": note.return_id,
            "source_key": source_key,
            "partner_id": note.partner_id,
            "currency": note.currency,
            "lines": _lines_json(note.lines),
            "total": str(note.total),
            "reason": note.reason,
            "posted_at": note.posted_at.timestamp(),
        },
    )


def _credit_note(row: Any) -> CreditNote:
    return CreditNote(
        row.credit_note_id,
        row.credit_note_number,
        row.invoice_id,
        row.order_id,
        row.return_id,
        row.partner_id,
        row.currency,
        _lines(row.lines),
        Decimal(row.total),
        row.reason,
        datetime.fromtimestamp(row.posted_at, UTC),
    )


def credit_notes_for_invoice(conn: Connection, invoice_id: str) -> list[CreditNote]:
    rows = sql.CREDIT_NOTES_OF_INVOICE.run(conn, {"invoice_id": invoice_id}).all()
    return [_credit_note(row) for row in rows]


def get_credit_note(conn: Connection, credit_note_id: str) -> CreditNote | None:
    row = sql.CREDIT_NOTE.run(conn, {"credit_note_id": credit_note_id}).first()
    return None if row is None else _credit_note(row)


def list_credit_notes(
    conn: Connection,
    partner_id: str,
    order_id: str,
    page_token: str,
    size: int,
    *,
    order_ids: Sequence[str] = (),
) -> tuple[list[CreditNote], str]:
    """Newest first (by seq), keyset-paged: one page and the next page's token. With
    `order_ids`, only those orders' credit notes (one statement: an IN list, at most 500)."""
    c = t.credit_notes.c
    query = select(t.credit_notes)
    if partner_id:
        query = query.where(c.partner_id == partner_id)
    if order_id:
        query = query.where(c.order_id == order_id)
    if order_ids:
        query = query.where(c.order_id.in_(order_ids))
    rows = conn.execute(keyset(query, c.seq, page_token, size, descending=True)).all()
    page, token = next_page(rows, size, key=lambda row: int(row.seq))
    return [_credit_note(row) for row in page], token
