"""carrier-adapter's initial schema: quotes, labels, the raw payload log, seen scan keys, and
the kit's outbox and inbox.

Generated once from store/tables.py by Alembic's autogenerate and written out, so this revision
never changes when the tables module does; later changes are new revisions.

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
    create_kit_tables(op)
    op.create_table(
        "labels",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("label_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claim_token", sa.String(length=40), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("rate_id", sa.String(length=40), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_account_id", sa.String(length=32), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("package_tracking_numbers", sa.Text(), nullable=False),
        sa.Column("label_format", sa.String(length=8), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("quoted_amount", sa.String(length=40), nullable=True),
        sa.Column("quoted_currency", sa.String(length=3), nullable=True),
        sa.Column("carrier_shipment_id", sa.String(length=64), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("booked_at", sa.Float(), nullable=True),
        sa.Column("cancelled_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("label_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_labels_tracking_number"), ["tracking_number"], unique=False
        )

    op.create_table(
        "payload_log",
        sa.Column(
            "record_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_account_id", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("payload_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payload_log_carrier_account_id"), ["carrier_account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payload_log_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payload_log_reference"), ["reference"], unique=False)

    op.create_table(
        "quotes",
        sa.Column("rate_id", sa.String(length=40), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_account_id", sa.String(length=32), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("service_name", sa.String(length=200), nullable=False),
        sa.Column("service_level", sa.String(length=16), nullable=True),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("transit_days", sa.Integer(), nullable=True),
        sa.Column("estimated_delivery", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rate_id"),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quotes_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "seen_scans",
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("dedupe_key"),
    )


def downgrade() -> None:
    op.drop_table("seen_scans")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quotes_expires_at"))

    op.drop_table("quotes")
    with op.batch_alter_table("payload_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payload_log_reference"))
        batch_op.drop_index(batch_op.f("ix_payload_log_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_payload_log_carrier_account_id"))

    op.drop_table("payload_log")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labels_tracking_number"))

    op.drop_table("labels")
    drop_kit_tables(op)
