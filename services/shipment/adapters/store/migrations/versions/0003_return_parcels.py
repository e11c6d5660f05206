"""Return parcels: shipments.kind and pending_picks.kind (1 outbound, 2 return parcel).

Every existing row is outbound. A return parcel's source key (pick_id) is its return id.

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
    for table in ("shipments", "pending_picks"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("kind", sa.Integer(), nullable=False, server_default=sa.text("1"))
            )


def downgrade() -> None:
    for table in ("pending_picks", "shipments"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("kind")
