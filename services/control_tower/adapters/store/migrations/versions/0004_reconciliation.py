"""Reconciliation: findings, runs, and each check's schedule with its lease.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reconcile_findings",
        sa.Column("finding_id", _ID, autoincrement=True, nullable=False),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("evidence", sa.String(length=1000), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("runs_seen", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=1000), nullable=False),
        sa.Column("corrected_at", sa.Float(), nullable=True),
        sa.Column("correction_succeeded", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("finding_id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_reconcile_findings_check_subject",
        "reconcile_findings",
        ["check_name", "subject_id", "closed_at"],
    )
    op.create_index("ix_reconcile_findings_closed_at", "reconcile_findings", ["closed_at"])
    op.create_table(
        "reconcile_runs",
        sa.Column("run_id", _ID, autoincrement=True, nullable=False),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("drifts", sa.Integer(), nullable=False),
        sa.Column("new_findings", sa.Integer(), nullable=False),
        sa.Column("corrected", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("open_findings", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_reconcile_runs_check", "reconcile_runs", ["check_name", "run_id"])
    op.create_table(
        "reconcile_schedule",
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("next_run_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("check_name"),
    )


def downgrade() -> None:
    op.drop_table("reconcile_schedule")
    op.drop_index("ix_reconcile_runs_check", table_name="reconcile_runs")
    op.drop_table("reconcile_runs")
    op.drop_index("ix_reconcile_findings_closed_at", table_name="reconcile_findings")
    op.drop_index("ix_reconcile_findings_check_subject", table_name="reconcile_findings")
    op.drop_table("reconcile_findings")
