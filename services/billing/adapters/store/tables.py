"""Billing's tables (SQLAlchemy Core).

Money is Decimal text (exact on both backends); instants are epoch seconds (Float). Invoice and
credit-note lines are JSON text: always written once with their document and read whole.

- invoices.shipment_id is UNIQUE: one invoice per shipment even if two deliveries race.
- number_series holds one counter row per series and year; it is bumped in the transaction that
  inserts the document, so a rollback (or a crash) also rolls the number back: no gaps.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

order_prices = Table(
    "order_prices",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("partner_id", String(40), nullable=False),
    Column("customer", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("lines", Text, nullable=False),
)

freight_charges = Table(
    "freight_charges",
    metadata,
    Column("shipment_id", String(40), primary_key=True),
    Column("freight_charge_id", String(40), nullable=False, unique=True),
    Column("order_id", String(40), nullable=False),
    Column("partner_id", String(40), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("quoted_amount", Text, nullable=True),
    Column("final_amount", Text, nullable=True),
    Column("finalized_at", Float, nullable=True),
)

invoices = Table(
    "invoices",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("invoice_id", String(40), nullable=False, unique=True),
    Column("invoice_number", String(40), nullable=False, unique=True),
    Column("series", String(32), nullable=False),
    Column("order_id", String(40), nullable=False, index=True),
    Column("shipment_id", String(40), nullable=False, unique=True),
    Column("partner_id", String(40), nullable=False, index=True),
    Column("customer", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", Integer, nullable=False),
    Column("lines", Text, nullable=False),
    Column("total", Text, nullable=False),
    Column("posted_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("credit_note_id", String(40), nullable=False, unique=True),
    Column("credit_note_number", String(40), nullable=False, unique=True),
    Column("invoice_id", String(40), nullable=False),
    Column("order_id", String(40), nullable=False, index=True),
    Column("return_id", String(40), nullable=False),
    # return_id + receipt_id: one credit note per return receipt, however often it is delivered.
    Column("source_key", String(100), nullable=False, unique=True),
    Column("partner_id", String(40), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("lines", Text, nullable=False),
    Column("total", Text, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("posted_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

number_series = Table(
    "number_series",
    metadata,
    Column("series", String(40), primary_key=True),
    Column("last_value", BigInteger, nullable=False),
)
