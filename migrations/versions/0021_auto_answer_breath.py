"""queues' auto-answer breath: seconds the volunteer screen waits before answering

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 0 to 5 (the API checks it); 2 for every queue, old and new.
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "auto_answer_seconds", sa.Integer(), server_default=sa.text("2"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("auto_answer_seconds")
