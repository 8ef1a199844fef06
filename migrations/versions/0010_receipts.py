"""tax receipts: organisations, campaigns, counters, receipts; cancelled payments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
Time = app.db.UTCDateTime(timezone=True)
LIVE = sa.text("status = 'issued'")


def upgrade() -> None:
    op.create_table(
        "receipt_organisations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("postcode", sa.String(16), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("siren", sa.String(32), nullable=False),
        sa.Column("rna", sa.String(32), nullable=False),
        sa.Column("legal_status", sa.Text(), nullable=False),
        sa.Column("tax_articles", Json, nullable=False),
        sa.Column("signatory_name", sa.String(200), nullable=False),
        sa.Column("signatory_title", sa.String(200), nullable=False),
        sa.Column("signature_place", sa.String(100), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipt_organisations"),
        sa.UniqueConstraint("name", name="uq_receipt_organisations_name"),
    )
    op.create_table(
        "receipt_campaigns",
        sa.Column("campaign_id", BigId, autoincrement=False, nullable=False),
        sa.Column("organisation_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_receipt_campaigns"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_receipt_campaigns_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["receipt_organisations.id"],
            name="fk_receipt_campaigns_organisation_id_receipt_organisations",
            ondelete="RESTRICT",
        ),
    )
    op.create_table(
        "receipt_counters",
        sa.Column("organisation_id", BigId, autoincrement=False, nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organisation_id", "year", name="pk_receipt_counters"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["receipt_organisations.id"],
            name="fk_receipt_counters_organisation_id_receipt_organisations",
            ondelete="RESTRICT",
        ),
    )
    op.create_table(
        "receipts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organisation_id", BigId, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("pledge_id", BigId, nullable=True),
        sa.Column("pledge_reference", sa.String(16), nullable=False),
        sa.Column("donor_first_name", sa.String(100), nullable=False),
        sa.Column("donor_last_name", sa.String(100), nullable=False),
        sa.Column("donor_address", sa.Text(), nullable=False),
        sa.Column("donor_postcode", sa.String(16), nullable=False),
        sa.Column("donor_city", sa.String(100), nullable=False),
        sa.Column("donor_country", sa.String(2), nullable=False),
        sa.Column("donor_email", sa.String(254), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("paid_at", Time, nullable=False),
        sa.Column("payment_mode", sa.String(16), nullable=False),
        sa.Column("organisation", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_at", Time, nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("cancelled_at", Time, nullable=True),
        sa.Column("cancel_reason", sa.String(200), nullable=True),
        sa.Column("copies", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent_at", Time, nullable=True),
        sa.Column("sent_to", sa.String(254), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["receipt_organisations.id"],
            name="fk_receipts_organisation_id_receipt_organisations",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pledge_id"],
            ["pledges.id"],
            name="fk_receipts_pledge_id_pledges",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("organisation_id", "year", "number", name="uq_receipts_number"),
    )
    op.create_index(
        "uq_receipts_pledge_live",
        "receipts",
        ["pledge_id"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index("ix_receipts_campaign", "receipts", ["campaign_id", "id"])
    with op.batch_alter_table("pledge_payments") as batch:
        batch.add_column(sa.Column("cancelled_at", Time, nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pledge_payments") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("cancelled_at")
    op.drop_index("ix_receipts_campaign", table_name="receipts")
    op.drop_index("uq_receipts_pledge_live", table_name="receipts")
    op.drop_table("receipts")
    op.drop_table("receipt_counters")
    op.drop_table("receipt_campaigns")
    op.drop_table("receipt_organisations")
