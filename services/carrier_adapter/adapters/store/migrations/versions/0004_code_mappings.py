"""code_mappings and unmapped_scans: operators' versioned carrier code mappings, and the scans
left UNKNOWN that a mapping normalizes again.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "code_mappings",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_status_code", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("mapped_at", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "carrier", "carrier_status_code", "version", name="uq_code_mappings_code_version"
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "unmapped_scans",
        sa.Column("dedupe_key", sa.String(length=64), primary_key=True),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_status_code", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("scan", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("mapped_version", sa.Integer(), nullable=True),
        sa.Column("mapped_at", sa.Float(), nullable=True),
    )
    op.create_index(
        "ix_unmapped_scans_code",
        "unmapped_scans",
        ["mapped_version", "carrier", "carrier_status_code"],
    )


def downgrade() -> None:
    op.drop_index("ix_unmapped_scans_code", table_name="unmapped_scans")
    op.drop_table("unmapped_scans")
    op.drop_table("code_mappings")
