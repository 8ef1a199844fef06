"""tote board: a campaign's goal, a donor's consent to be named on air

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 02:45:00

``campaigns.goal_minor`` (nullable: no goal, no thermometer) and
``pledges.consent_board`` (false for every existing pledge: nobody consented).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("goal_minor", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("pledges") as batch:
        batch.add_column(
            sa.Column("consent_board", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("pledges") as batch:
        batch.drop_column("consent_board")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("goal_minor")
