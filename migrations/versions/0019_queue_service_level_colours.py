"""queues' service-level colours: the target and amber shares answered in time

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 20:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sl_target_percent", sa.Integer(), server_default=sa.text("80"), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                "sl_amber_percent", sa.Integer(), server_default=sa.text("70"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("sl_amber_percent")
        batch_op.drop_column("sl_target_percent")
