"""Order's initial schema: orders (aggregate documents), the saga command queue, and the kit's
outbox and inbox.

Written out explicitly (generated once from store/tables.py by Alembic's autogenerate), so this
revision never changes when the tables module does; later changes are new revisions.

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
        "orders",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("external_order_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("terminal", sa.Boolean(), nullable=False),
        sa.Column("in_exception", sa.Boolean(), nullable=False),
        sa.Column("step_deadline", sa.Float(), nullable=True),
        sa.Column("wanted_skus", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("order_id"),
        sa.UniqueConstraint("partner_id", "external_order_id", name="uq_orders_partner_external"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_orders_deadline", "orders", ["step_deadline"], unique=False)
    op.create_index("ix_orders_partner_seq", "orders", ["partner_id", "seq"], unique=False)
    op.create_table(
        "saga_commands",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("done_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_saga_commands_due", "saga_commands", ["done_at", "next_attempt_at"], unique=False
    )
    create_kit_tables(op)


def downgrade() -> None:
    drop_kit_tables(op)
    op.drop_index("ix_saga_commands_due", table_name="saga_commands")
    op.drop_table("saga_commands")
    op.drop_index("ix_orders_partner_seq", table_name="orders")
    op.drop_index("ix_orders_deadline", table_name="orders")
    op.drop_table("orders")
