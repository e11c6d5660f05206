"""tracking_polls: the polling scheduler's state per booked label of a polled carrier account.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracking_polls",
        sa.Column("label_id", sa.String(length=40), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_account_id", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("label_created_at", sa.Float(), nullable=False),
        sa.Column("last_polled_at", sa.Float(), nullable=True),
        sa.Column("last_scan_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("lease_token", sa.String(length=40), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("label_id"),
    )
    with op.batch_alter_table("tracking_polls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_polls_carrier_account_id"),
            ["carrier_account_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tracking_polls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_polls_carrier_account_id"))
    op.drop_table("tracking_polls")
