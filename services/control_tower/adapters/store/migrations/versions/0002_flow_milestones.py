"""Business-flow milestones: the earliest time each order, shipment or return reached a step.

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
        "flow_milestones",
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("milestone", sa.String(length=32), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "milestone"),
    )
    op.create_index("ix_flow_milestones_milestone", "flow_milestones", ["milestone", "seen_at"])


def downgrade() -> None:
    op.drop_index("ix_flow_milestones_milestone", table_name="flow_milestones")
    op.drop_table("flow_milestones")
