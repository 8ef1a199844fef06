"""rules: rule files put through the API, numbers' strikes and blocks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('rule_files',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('campaign_id', BigId, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_rule_files_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_files')),
    sa.UniqueConstraint('campaign_id', 'version', name='uq_rule_files_campaign_version')
    )
    op.create_table('number_blocks',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('campaign_id', BigId, nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('strikes', sa.Integer(), nullable=False),
    sa.Column('blocked_until', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_number_blocks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_number_blocks')),
    sa.UniqueConstraint('campaign_id', 'number', name='uq_number_blocks_campaign_number')
    )
    op.create_index('ix_number_blocks_campaign_until', 'number_blocks', ['campaign_id', 'blocked_until'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_number_blocks_campaign_until', table_name='number_blocks')
    op.drop_table('number_blocks')
    op.drop_table('rule_files')
