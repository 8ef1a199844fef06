"""surge: queues' surge thresholds and state, standby volunteers, pages, the SMS outbox

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:48:42
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('queue_surges',
    sa.Column('queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('enter_waiting', sa.Integer(), nullable=True),
    sa.Column('leave_waiting', sa.Integer(), nullable=True),
    sa.Column('enter_wait_seconds', sa.Float(), nullable=True),
    sa.Column('leave_wait_seconds', sa.Float(), nullable=True),
    sa.Column('enter_service_level', sa.Float(), nullable=True),
    sa.Column('leave_service_level', sa.Float(), nullable=True),
    sa.Column('leave_after_seconds', sa.Integer(), nullable=False),
    sa.Column('surge', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('measures', JSON, nullable=False),
    sa.Column('calm_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_queue_surges_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_queue_surges_queue_id_queues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('queue_id', name=op.f('pk_queue_surges'))
    )
    with op.batch_alter_table('queue_surges', schema=None) as batch_op:
        batch_op.create_index('ix_queue_surges_campaign', ['campaign_id'], unique=False)

    op.create_table('pages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('paged_by', sa.String(length=100), nullable=False),
    sa.Column('paged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('standby_as', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sms', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_pages_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_pages_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_pages_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pages'))
    )
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_index('ix_pages_agent', ['agent_id', 'paged_at'], unique=False)
        batch_op.create_index('ix_pages_campaign_paged_at', ['campaign_id', 'paged_at'], unique=False)

    op.create_table('standby_volunteers',
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('standby', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('last_paged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_standby_volunteers_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_standby_volunteers_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_standby_volunteers'))
    )
    with op.batch_alter_table('standby_volunteers', schema=None) as batch_op:
        batch_op.create_index('ix_standby_volunteers_campaign', ['campaign_id', 'standby'], unique=False)

    op.create_table('sms_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_sms_outbox_page_id_pages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_sms_outbox_idempotency_key'))
    )
    with op.batch_alter_table('sms_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_sms_outbox_delivery', ['delivery', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sms_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_outbox_delivery')

    op.drop_table('sms_outbox')
    with op.batch_alter_table('standby_volunteers', schema=None) as batch_op:
        batch_op.drop_index('ix_standby_volunteers_campaign')

    op.drop_table('standby_volunteers')
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.drop_index('ix_pages_campaign_paged_at')
        batch_op.drop_index('ix_pages_agent')

    op.drop_table('pages')
    with op.batch_alter_table('queue_surges', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_surges_campaign')

    op.drop_table('queue_surges')
