"""Shipment's initial schema: order refs, pending picks, shipments, tracking numbers, scans, and
the kit's outbox and inbox.

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

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_refs",
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("service_level", sa.Integer(), nullable=False),
        sa.Column("ship_to", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_table(
        "pending_picks",
        sa.Column("pick_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("location_id", sa.String(length=40), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("pick_id"),
    )
    op.create_index("ix_pending_picks_next_attempt_at", "pending_picks", ["next_attempt_at"])
    op.create_table(
        "shipments",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("pick_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("label_attempts", sa.Integer(), nullable=False),
        sa.Column("label_due_at", sa.Float(), nullable=True),
        sa.Column("label_lease_until", sa.Float(), nullable=True),
        sa.Column("final_charge", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("shipment_id"),
        sa.UniqueConstraint("pick_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index("ix_shipments_partner_id", "shipments", ["partner_id"])
    op.create_index("ix_shipments_label_due_at", "shipments", ["label_due_at"])
    op.create_table(
        "tracking_numbers",
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "tracking_number"),
    )
    op.create_table(
        "scans",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("shipment_id", sa.String(length=40), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("occur_time", sa.Float(), nullable=False),
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("shipment_id", "dedupe_key", name="uq_scans_shipment_dedupe"),
        sqlite_autoincrement=True,
    )
    create_kit_tables(op)


def downgrade() -> None:
    drop_kit_tables(op)
    op.drop_table("scans")
    op.drop_table("tracking_numbers")
    op.drop_table("shipments")
    op.drop_table("pending_picks")
    op.drop_table("order_refs")
