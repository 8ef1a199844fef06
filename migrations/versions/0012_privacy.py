"""privacy: the register of exports, erasures and retention purges; campaigns purged

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'privacy_actions',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('looked_up_by', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('summary', JSON, nullable=False),
        sa.Column('kept', JSON, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_actions')),
    )
    op.create_index('ix_privacy_actions_at', 'privacy_actions', ['at'], unique=False)
    op.create_table(
        'privacy_purged_campaigns',
        sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('purged_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_privacy_purged_campaigns_campaign_id_campaigns'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_privacy_purged_campaigns')),
    )


def downgrade() -> None:
    op.drop_table('privacy_purged_campaigns')
    op.drop_index('ix_privacy_actions_at', table_name='privacy_actions')
    op.drop_table('privacy_actions')
