"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 12:57:17.185707
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('campaigns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dialled_numbers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('default_region', sa.String(length=2), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('opening_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('closed_message', sa.Text(), nullable=False),
    sa.Column('default_queue', sa.String(length=100), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_agent_id', ['agent_id'], unique=False)
        batch_op.create_index('ix_events_call_id', ['call_id'], unique=False)
        batch_op.create_index('ix_events_campaign_seq', ['campaign_id', 'seq'], unique=False)

    op.create_table('telephony_commands',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('command', sa.String(length=16), nullable=False),
    sa.Column('provider_call_id', sa.String(length=128), nullable=False),
    sa.Column('args', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telephony_commands'))
    )
    with op.batch_alter_table('telephony_commands', schema=None) as batch_op:
        batch_op.create_index('ix_telephony_commands_delivery', ['delivery', 'next_attempt_at'], unique=False)

    op.create_table('telephony_inbound',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('provider_call_id', sa.String(length=128), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_telephony_inbound'))
    )
    with op.batch_alter_table('telephony_inbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_telephony_inbound_provider_call_id'), ['provider_call_id'], unique=False)

    op.create_table('timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('due_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_agent_kind', ['agent_id', 'kind'], unique=False)
        batch_op.create_index('ix_timers_call_kind', ['call_id', 'kind'], unique=False)
        batch_op.create_index('ix_timers_due_at', ['due_at'], unique=False)

    op.create_table('queues',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('strategy', sa.String(length=20), nullable=False),
    sa.Column('required_skill', sa.String(length=64), nullable=True),
    sa.Column('required_level', sa.Integer(), nullable=False),
    sa.Column('tiers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('ageing_seconds', sa.Integer(), nullable=False),
    sa.Column('sl_threshold_seconds', sa.Integer(), nullable=False),
    sa.Column('ring_timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('wrapup_seconds', sa.Integer(), nullable=False),
    sa.Column('max_wait_seconds', sa.Integer(), nullable=True),
    sa.Column('max_length', sa.Integer(), nullable=True),
    sa.Column('overflow_queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('overflow_message', sa.Text(), nullable=False),
    sa.Column('auto_answer', sa.Boolean(), nullable=False),
    sa.Column('dialled_numbers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rr_last_agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_queues_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['overflow_queue_id'], ['queues.id'], name=op.f('fk_queues_overflow_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queues')),
    sa.UniqueConstraint('campaign_id', 'name', name='uq_queues_campaign_name')
    )
    op.create_table('seats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.Column('site', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_seats_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seats')),
    sa.UniqueConstraint('campaign_id', 'name', name='uq_seats_campaign_name')
    )
    op.create_table('agents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('languages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('partner_org', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('pause_reason', sa.String(length=64), nullable=True),
    sa.Column('state_since', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('pending_state', sa.String(length=16), nullable=True),
    sa.Column('pending_reason', sa.String(length=64), nullable=True),
    sa.Column('current_call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('seat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('missed_in_row', sa.Integer(), nullable=False),
    sa.Column('calls_taken', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_agents_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_agents_seat_id_seats'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('campaign_id', 'login', name='uq_agents_campaign_login')
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index('ix_agents_campaign_state', ['campaign_id', 'state', 'state_since'], unique=False)

    op.create_table('agent_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_sessions_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_agent_sessions_seat_id_seats'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_sessions'))
    )
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_agent_sessions_agent', ['agent_id', 'started_at'], unique=False)

    op.create_table('agent_skills',
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('skill', sa.String(length=64), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_skills_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', 'skill', name=op.f('pk_agent_skills'))
    )
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.create_index('ix_agent_skills_skill_level', ['skill', 'level'], unique=False)

    op.create_table('calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider_call_id', sa.String(length=128), nullable=False),
    sa.Column('leg', sa.Integer(), nullable=False),
    sa.Column('parent_call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('caller_raw', sa.String(length=64), nullable=True),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.Column('caller_number_issue', sa.String(length=32), nullable=True),
    sa.Column('dialled', sa.String(length=32), nullable=False),
    sa.Column('queue_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('rank_key', sa.Float(), nullable=False),
    sa.Column('received_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('queued_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('offered_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hangup_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('offers', sa.Integer(), nullable=False),
    sa.Column('wait_seconds', sa.Float(), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.Column('disposition', sa.String(length=64), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_calls_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_calls_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_calls_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('provider_call_id', 'leg', name='uq_calls_provider_call_leg')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_caller_number', ['caller_number', 'received_at'], unique=False)
        batch_op.create_index('ix_calls_campaign_state', ['campaign_id', 'state'], unique=False)
        batch_op.create_index('ix_calls_queue_state_rank', ['queue_id', 'state', 'rank_key'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_queue_state_rank')
        batch_op.drop_index('ix_calls_campaign_state')
        batch_op.drop_index('ix_calls_caller_number')

    op.drop_table('calls')
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_skills_skill_level')

    op.drop_table('agent_skills')
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_sessions_agent')

    op.drop_table('agent_sessions')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index('ix_agents_campaign_state')

    op.drop_table('agents')
    op.drop_table('seats')
    op.drop_table('queues')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_due_at')
        batch_op.drop_index('ix_timers_call_kind')
        batch_op.drop_index('ix_timers_agent_kind')

    op.drop_table('timers')
    with op.batch_alter_table('telephony_inbound', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_telephony_inbound_provider_call_id'))

    op.drop_table('telephony_inbound')
    with op.batch_alter_table('telephony_commands', schema=None) as batch_op:
        batch_op.drop_index('ix_telephony_commands_delivery')

    op.drop_table('telephony_commands')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_campaign_seq')
        batch_op.drop_index('ix_events_call_id')
        batch_op.drop_index('ix_events_agent_id')

    op.drop_table('events')
    op.drop_table('campaigns')
    
