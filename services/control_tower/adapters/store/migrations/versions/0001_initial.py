"""The control tower's initial schema: consumed events, reference links, and the kit's outbox
and inbox.

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
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("producer", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", sa.Float(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_aggregate_id", "events", ["aggregate_id"])
    op.create_index("ix_events_correlation_id", "events", ["correlation_id"])
    op.create_table(
        "links",
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", "partner_id"),
    )
    op.create_index("ix_links_value", "links", ["value"])
    op.create_index("ix_links_order_id", "links", ["order_id"])
    create_kit_tables(op)


def downgrade() -> None:
    drop_kit_tables(op)
    op.drop_table("links")
    op.drop_table("events")
