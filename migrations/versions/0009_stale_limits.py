"""safety net for lost hang-ups: per-campaign stale-call limits, alert mark on calls

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('stale_alert_seconds', sa.Integer(), server_default=sa.text('1800'), nullable=False)
        )
        batch_op.add_column(
            sa.Column('stale_end_seconds', sa.Integer(), server_default=sa.text('7200'), nullable=False)
        )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('stale_alerted_at', app.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('stale_alerted_at')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('stale_end_seconds')
        batch_op.drop_column('stale_alert_seconds')
