"""roster: partner sites; volunteers' site, employer, contact, training; site-scoped
users; queues' site preference

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _site_column(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", BIG_ID, nullable=True))
        batch_op.create_foreign_key(
            op.f(f"fk_{table}_site_id_sites"), "sites", ["site_id"], ["id"], ondelete="SET NULL"
        )


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_sites_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("campaign_id", "name", name="uq_sites_campaign_name"),
    )
    _site_column("agents")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("employer", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("trained", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
    _site_column("seats")
    _site_column("users")
    _site_column("queues")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "site_widen_seconds", sa.Integer(), server_default=sa.text("30"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("site_widen_seconds")
    for table in ("queues", "users", "seats"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"fk_{table}_site_id_sites"), type_="foreignkey")
            batch_op.drop_column("site_id")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_agents_site_id_sites"), type_="foreignkey")
        batch_op.drop_column("notes")
        batch_op.drop_column("trained")
        batch_op.drop_column("phone")
        batch_op.drop_column("email")
        batch_op.drop_column("employer")
        batch_op.drop_column("site_id")
    op.drop_table("sites")
