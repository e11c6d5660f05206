"""Initial schema of the kit's test service: the kit tables and one effect table.

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
    # No unique constraint on purpose: a double-applied event shows up as two rows.
    op.create_table(
        "effects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("thing_id", sa.String(255), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("consumer", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("effects")
    drop_kit_tables(op)
