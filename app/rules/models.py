"""Rules tables: rule files replaced through the API, and numbers' strikes and blocks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime, utcnow


class RuleFile(Base):
    """One version of a campaign's rules file, as put through the API (newest in force)."""

    __tablename__ = "rule_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("campaign_id", "version", name="uq_rule_files_campaign_version"),
    )


class NumberBlock(Base):
    """Prank strikes against a caller number, and the block they led to."""

    __tablename__ = "number_blocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    strikes: Mapped[int] = mapped_column(Integer, default=0)
    # Blocked while this is in the future; None: not blocked.
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Who acted last: a user name, or "rule:<rule name>".
    updated_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("campaign_id", "number", name="uq_number_blocks_campaign_number"),
        Index("ix_number_blocks_campaign_until", "campaign_id", "blocked_until"),
    )
