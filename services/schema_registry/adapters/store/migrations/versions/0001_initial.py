"""The registry's initial schema: schemas, subject_versions, config.

The registry neither publishes nor consumes events, so it has no outbox or inbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "schemas",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("message_name", sa.String(255), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "subject_versions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_id", _ID, sa.ForeignKey("schemas.id"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("subject", "version", name="uq_subject_versions_subject_version"),
        sa.UniqueConstraint("subject", "schema_id", name="uq_subject_versions_subject_schema"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "config",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("compatibility", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("config")
    op.drop_table("subject_versions")
    op.drop_table("schemas")
