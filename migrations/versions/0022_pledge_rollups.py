"""pledge roll-ups: running totals by dimension; the pledge row carries its key

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 23:40:00

``pledge_rollups`` replaces ``pledge_counters`` (its ``all`` dimension), backfilled
from the pledges; ``pledges.partner_org`` (the volunteer's partner when saved,
backfilled from the agents) and the Idempotency-Key columns ``idem_scope``,
``idem_key``, ``idem_request`` with their unique index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 8
FIGURES = (
    "SUM(CASE WHEN status <> 'cancelled' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status <> 'cancelled' THEN amount_minor ELSE 0 END), "
    "SUM(CASE WHEN status <> 'cancelled' THEN paid_minor ELSE 0 END), "
    "SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'cancelled' THEN amount_minor ELSE 0 END)"
)


def _keys(dialect: str) -> dict[str, str]:
    if dialect == "postgresql":
        hour = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\\:00')"
    else:  # naive UTC text "YYYY-MM-DD HH:MM:SS..."
        hour = "substr(created_at, 1, 10) || 'T' || substr(created_at, 12, 2) || '\\:00'"
    return {
        "all": "''",
        "slot": "COALESCE(time_slot, '')",
        "hour": hour,
        "queue": "COALESCE(CAST(queue_id AS VARCHAR), '')",
        "agent": "COALESCE(CAST(agent_id AS VARCHAR), '')",
        "partner": "COALESCE(partner_org, '')",
        "departement": "COALESCE(departement, '')",
    }


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("pledges", sa.Column("partner_org", sa.String(length=200), nullable=True))
    op.add_column("pledges", sa.Column("idem_scope", sa.String(length=64), nullable=True))
    op.add_column("pledges", sa.Column("idem_key", sa.String(length=64), nullable=True))
    op.add_column("pledges", sa.Column("idem_request", sa.String(length=64), nullable=True))
    op.create_index("uq_pledges_idem", "pledges", ["idem_scope", "idem_key"], unique=True)
    op.execute(
        "UPDATE pledges SET partner_org = "
        "(SELECT agents.partner_org FROM agents WHERE agents.id = pledges.agent_id) "
        "WHERE agent_id IS NOT NULL"
    )
    op.create_table(
        "pledge_rollups",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("promised_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_count", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_pledge_rollups_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "dimension", "key", "shard", name=op.f("pk_pledge_rollups")
        ),
    )
    for dimension, key in _keys(bind.dialect.name).items():
        op.execute(
            sa.text(
                "INSERT INTO pledge_rollups (campaign_id, dimension, key, shard, count, "
                "promised_minor, paid_minor, cancelled_count, cancelled_minor) "
                f"SELECT campaign_id, '{dimension}', {key}, id % {SHARDS}, {FIGURES} "
                "FROM pledges GROUP BY 1, 3, 4"
            )
        )
    op.drop_table("pledge_counters")


def downgrade() -> None:
    op.create_table(
        "pledge_counters",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("promised_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_pledge_counters_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_pledge_counters")),
    )
    op.execute(
        "INSERT INTO pledge_counters (campaign_id, shard, count, promised_minor, paid_minor) "
        "SELECT campaign_id, shard, count, promised_minor, paid_minor FROM pledge_rollups "
        "WHERE dimension = 'all'"
    )
    op.drop_table("pledge_rollups")
    op.drop_index("uq_pledges_idem", table_name="pledges")
    with op.batch_alter_table("pledges") as batch:
        batch.drop_column("idem_request")
        batch.drop_column("idem_key")
        batch.drop_column("idem_scope")
        batch.drop_column("partner_org")
