"""call path: an agent holds at most one live call (partial unique index)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("state IN ('offered', 'connected', 'wrap_up')")


def upgrade() -> None:
    op.create_index(
        'uq_calls_agent_live',
        'calls',
        ['agent_id'],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index('uq_calls_agent_live', table_name='calls')
