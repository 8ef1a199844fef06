"""callbacks: expected-wait announcements and callbacks per queue; a call's kind

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One live call per agent (0007) also covers a callback being dialled.
LIVE_BEFORE = sa.text("state IN ('offered', 'connected', 'wrap_up')")
LIVE = sa.text("state IN ('offered', 'dialing', 'connected', 'wrap_up')")


def _live_index(where: sa.TextClause) -> None:
    op.create_index(
        "uq_calls_agent_live",
        "calls",
        ["agent_id"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "wait_announce_seconds", sa.Integer(), server_default=sa.text("60"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("callback_offer_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("callback_digit", sa.String(length=1), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("callback_retries", sa.Integer(), server_default=sa.text("2"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "callback_retry_seconds",
                sa.Integer(),
                server_default=sa.text("300"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "callback_expiry_seconds",
                sa.Integer(),
                server_default=sa.text("7200"),
                nullable=False,
            )
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        # Wide enough for the callbacks' states (callback_requested).
        batch_op.alter_column(
            "state",
            existing_type=sa.String(length=16),
            type_=sa.String(length=24),
            existing_nullable=False,
        )
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="inbound", nullable=False)
        )
        batch_op.add_column(sa.Column("callback_digit", sa.String(length=1), nullable=True))
        batch_op.add_column(
            sa.Column("dial_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.drop_index("uq_calls_agent_live", table_name="calls")
    _live_index(LIVE)


def downgrade() -> None:
    op.drop_index("uq_calls_agent_live", table_name="calls")
    _live_index(LIVE_BEFORE)
    # The callbacks' states do not fit the old width nor the old code: as failed.
    op.execute(
        "UPDATE calls SET state = 'failed'"
        " WHERE state IN ('callback_requested', 'dialing', 'retry_wait', 'expired')"
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("dial_attempts")
        batch_op.drop_column("callback_digit")
        batch_op.drop_column("kind")
        batch_op.alter_column(
            "state",
            existing_type=sa.String(length=24),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("callback_expiry_seconds")
        batch_op.drop_column("callback_retry_seconds")
        batch_op.drop_column("callback_retries")
        batch_op.drop_column("callback_digit")
        batch_op.drop_column("callback_offer_seconds")
        batch_op.drop_column("wait_announce_seconds")
