"""auth: login throttles per name and address, sessions' public ids, spent websocket tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 11:20:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Failures were rows counted per name; a throttle row per (name, address) replaces them.
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_username_at")
        batch_op.drop_index("ix_login_failures_client_at")
    op.drop_table("login_failures")
    op.create_table(
        "login_throttles",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", "client", name=op.f("pk_login_throttles")),
    )
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.create_index("ix_login_throttles_last_at", ["last_at"], unique=False)

    op.create_table(
        "ws_token_uses",
        sa.Column("jti", sa.String(length=32), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_ws_token_uses")),
    )
    with op.batch_alter_table("ws_token_uses", schema=None) as batch_op:
        batch_op.create_index("ix_ws_token_uses_expires_at", ["expires_at"], unique=False)

    # Live sessions keep working: each gets a random public id before the column is required.
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=43), nullable=True))
    conn = op.get_bind()
    sessions = sa.table("auth_sessions", sa.column("id", BigId), sa.column("public_id", sa.String))
    for (session_id,) in conn.execute(sa.select(sessions.c.id)).all():
        conn.execute(
            sessions.update()
            .where(sessions.c.id == session_id)
            .values(public_id=secrets.token_urlsafe(32))
        )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=43), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_auth_sessions_public_id"), ["public_id"])


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_auth_sessions_public_id"), type_="unique")
        batch_op.drop_column("public_id")

    with op.batch_alter_table("ws_token_uses", schema=None) as batch_op:
        batch_op.drop_index("ix_ws_token_uses_expires_at")
    op.drop_table("ws_token_uses")

    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.drop_index("ix_login_throttles_last_at")
    op.drop_table("login_throttles")

    op.create_table(
        "login_failures",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_client_at", ["client", "at"], unique=False)
        batch_op.create_index("ix_login_failures_username_at", ["username", "at"], unique=False)
