"""Billing's hot-path SQL statements, each built once (SQLAlchemy Core with `bindparam()`).

Building a select()/insert() per call cost more CPU than running it on SQLite (coercions, bind
parameters, cache-key generation); a statement built once keeps its memoized cache key, so a
call only binds its values. Statements are plain objects: nothing connects here. Each is
`prepared`: it runs on the raw DBAPI cursor (`STATEMENT.run(conn, params)`) in the unit of work's
transaction, skipping SQLAlchemy's per-execute work (services/kit/statements.py).

- `NEW_*` are first-writer-wins inserts and `UPSERT_*` insert-or-overwrite ones, ON CONFLICT per
  dialect (the prepared statement picks the connection's): one statement where a read used to
  decide.
- Inserts are `inline()`: no RETURNING of the generated `seq` on PostgreSQL, nothing reads it.
"""

from __future__ import annotations

from sqlalchemy import Insert, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from services.billing.adapters.store import tables as t
from services.kit.statements import insert_new, prepared

# -- order price cache -----------------------------------------------------------------------

PRICES = prepared(select(t.order_prices).where(t.order_prices.c.order_id == bindparam("order_id")))
# First OrderPlaced wins: a second insert of the order finds its row and does nothing.
NEW_PRICES = prepared(insert_new(t.order_prices))

# -- freight ---------------------------------------------------------------------------------

FREIGHT = prepared(
    select(t.freight_charges).where(t.freight_charges.c.shipment_id == bindparam("shipment_id"))
)


def _upsert_freight(statement: sqlite.Insert | postgresql.Insert) -> Insert:
    """Insert the shipment's freight row, or overwrite every column of the one it has."""
    overwrite = {
        column.name: statement.excluded[column.name]
        for column in t.freight_charges.columns
        if column.name != "shipment_id"
    }
    return statement.on_conflict_do_update(index_elements=["shipment_id"], set_=overwrite).inline()


UPSERT_FREIGHT = prepared(
    {
        "sqlite": _upsert_freight(sqlite.insert(t.freight_charges)),
        "postgresql": _upsert_freight(postgresql.insert(t.freight_charges)),
    }
)

# -- gapless number series -------------------------------------------------------------------

# Creates the series at 1 or bumps it, and returns the value taken: one statement, one row lock.
NEXT_NUMBER = prepared(
    text(
        "INSERT INTO number_series (series, last_value) VALUES (:s, 1) "
        "ON CONFLICT (series) DO UPDATE SET last_value = number_series.last_value + 1 "
        "RETURNING last_value"
    )
)

# -- invoices --------------------------------------------------------------------------------

INVOICE_OF_SHIPMENT = prepared(
    select(t.invoices.c.seq).where(t.invoices.c.shipment_id == bindparam("shipment_id"))
)
INSERT_INVOICE = prepared(t.invoices.insert().inline())
INVOICE = prepared(select(t.invoices).where(t.invoices.c.invoice_id == bindparam("invoice_id")))
# Locks the invoice's row until commit on PostgreSQL (SQLite renders no FOR UPDATE).
LOCK_INVOICE = prepared(
    select(t.invoices.c.seq)
    .where(t.invoices.c.invoice_id == bindparam("invoice_id"))
    .with_for_update()
)
INVOICES_OF_ORDER = prepared(
    select(t.invoices)
    .where(t.invoices.c.order_id == bindparam("order_id"))
    .order_by(t.invoices.c.seq)
)

# -- credit notes ----------------------------------------------------------------------------

CREDIT_NOTE_OF_SOURCE = prepared(
    select(t.credit_notes.c.seq).where(t.credit_notes.c.source_key == bindparam("source_key"))
)
INSERT_CREDIT_NOTE = prepared(t.credit_notes.insert().inline())
CREDIT_NOTES_OF_INVOICE = prepared(
    select(t.credit_notes).where(t.credit_notes.c.invoice_id == bindparam("invoice_id"))
)
CREDIT_NOTE = prepared(
    select(t.credit_notes).where(t.credit_notes.c.credit_note_id == bindparam("credit_note_id"))
)
