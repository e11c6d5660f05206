"""The exceptions workbench: exceptions reported by the owners' events, and the audit trail of
operator actions on them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exceptions",
        sa.Column(
            "exception_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("order_reference", sa.String(length=255), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=True),
        sa.Column("last_seen_at", sa.Float(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("closed_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("exception_id"),
        sa.UniqueConstraint("kind", "subject_id", name="uq_exceptions_kind_subject"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_exceptions_closed_at", "exceptions", ["closed_at"])
    op.create_table(
        "exception_audit",
        sa.Column(
            "audit_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("exception_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("acted_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("owner_call", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("result", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("audit_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_exception_audit_exception_id", "exception_audit", ["exception_id"])
    op.create_index("ix_exception_audit_order_id", "exception_audit", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_exception_audit_order_id", table_name="exception_audit")
    op.drop_index("ix_exception_audit_exception_id", table_name="exception_audit")
    op.drop_table("exception_audit")
    op.drop_index("ix_exceptions_closed_at", table_name="exceptions")
    op.drop_table("exceptions")
