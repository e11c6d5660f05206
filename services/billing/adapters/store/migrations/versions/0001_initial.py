"""Billing's initial schema: order price cache, freight charges, invoices, credit notes, number
series, and the kit's outbox and inbox.

Written out explicitly, so this revision never changes when store/tables.py does.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from services.kit.migrations import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("credit_note_id", sa.String(length=40), nullable=False),
        sa.Column("credit_note_number", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("credit_note_id"),
        sa.UniqueConstraint("credit_note_number"),
        sa.UniqueConstraint("source_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_credit_notes_order_id", "credit_notes", ["order_id"])
    op.create_index("ix_credit_notes_partner_id", "credit_notes", ["partner_id"])
    op.create_table(
        "freight_charges",
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("freight_charge_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("quoted_amount", sa.Text(), nullable=True),
        sa.Column("final_amount", sa.Text(), nullable=True),
        sa.Column("finalized_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("shipment_id"),
        sa.UniqueConstraint("freight_charge_id"),
    )
    op.create_table(
        "invoices",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_number", sa.String(length=40), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("invoice_id"),
        sa.UniqueConstraint("invoice_number"),
        sa.UniqueConstraint("shipment_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_invoices_order_id", "invoices", ["order_id"])
    op.create_index("ix_invoices_partner_id", "invoices", ["partner_id"])
    op.create_table(
        "number_series",
        sa.Column("series", sa.String(length=40), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("series"),
    )
    op.create_table(
        "order_prices",
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    create_kit_tables(op)


def downgrade() -> None:
    drop_kit_tables(op)
    op.drop_table("order_prices")
    op.drop_table("number_series")
    op.drop_table("invoices")
    op.drop_table("freight_charges")
    op.drop_table("credit_notes")
