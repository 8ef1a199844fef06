"""user_language: users' own language (nullable) and campaigns' default language

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    with op.batch_alter_table('campaigns') as batch_op:
        batch_op.add_column(
            sa.Column('language', sa.String(length=8), server_default='fr', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('language')
