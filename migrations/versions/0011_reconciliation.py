"""reconciliation: payment sources, imports and lines

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:06:47
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payment_sources',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('decimal_separator', sa.String(length=1), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=False),
    sa.Column('date_format', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_sources')),
    sa.UniqueConstraint('name', name=op.f('uq_payment_sources_name'))
    )
    op.create_table('payment_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('imported_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('recorded', sa.Integer(), nullable=False),
    sa.Column('already_recorded', sa.Integer(), nullable=False),
    sa.Column('unmatched', sa.Integer(), nullable=False),
    sa.Column('ignored', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('masked', sa.Integer(), nullable=False),
    sa.Column('recorded_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_payment_imports_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_id'], ['payment_sources.id'], name=op.f('fk_payment_imports_source_id_payment_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_imports'))
    )
    with op.batch_alter_table('payment_imports', schema=None) as batch_op:
        batch_op.create_index('ix_payment_imports_campaign', ['campaign_id', 'imported_at'], unique=False)

    op.create_table('payment_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('line_key', sa.String(length=160), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=True),
    sa.Column('booked_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('payer', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('pledge_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('confidence', sa.Integer(), nullable=False),
    sa.Column('suggestions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('difference_minor', sa.BigInteger(), nullable=False),
    sa.Column('matched_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('matched_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_payment_lines_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['import_id'], ['payment_imports.id'], name=op.f('fk_payment_lines_import_id_payment_imports'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pledge_id'], ['pledges.id'], name=op.f('fk_payment_lines_pledge_id_pledges'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['payment_sources.id'], name=op.f('fk_payment_lines_source_id_payment_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_lines')),
    sa.UniqueConstraint('source_id', 'line_key', name='uq_payment_lines_source_key')
    )
    with op.batch_alter_table('payment_lines', schema=None) as batch_op:
        batch_op.create_index('ix_payment_lines_campaign_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_payment_lines_import', ['import_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payment_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_lines_import')
        batch_op.drop_index('ix_payment_lines_campaign_status')

    op.drop_table('payment_lines')
    with op.batch_alter_table('payment_imports', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_imports_campaign')

    op.drop_table('payment_imports')
    op.drop_table('payment_sources')
