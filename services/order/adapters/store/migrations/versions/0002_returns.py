"""Returns (RMA): one row per return, its aggregate document and the columns lists query.

Written out explicitly (like 0001), so this revision never changes when the tables module does.

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
        "returns",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("return_id"),
        sa.UniqueConstraint("order_id", "idempotency_key", name="uq_returns_order_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_returns_order_seq", "returns", ["order_id", "seq"], unique=False)
    op.create_index("ix_returns_partner_seq", "returns", ["partner_id", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_returns_partner_seq", table_name="returns")
    op.drop_index("ix_returns_order_seq", table_name="returns")
    op.drop_table("returns")
