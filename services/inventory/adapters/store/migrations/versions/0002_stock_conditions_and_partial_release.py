"""Non-sellable stock and partial releases: positions.non_sellable, movements.sellable (which
quantity of the position a ledger row moved) and release_attempts (the partial-release
idempotency keys).

Existing rows get the values they always meant: nothing non-sellable, every movement sellable.

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
    op.add_column(
        "positions",
        sa.Column("non_sellable", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "movements",
        sa.Column("sellable", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_table(
        "release_attempts",
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reservation_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("release_attempts")
    # Batch mode: SQLite rebuilds the table to drop a column.
    with op.batch_alter_table("movements") as batch_op:
        batch_op.drop_column("sellable")
    with op.batch_alter_table("positions") as batch_op:
        batch_op.drop_column("non_sellable")
