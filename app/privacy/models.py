"""The privacy register: every export, erasure and retention purge, as it happened."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class PrivacyAction(Base):
    """One export, erasure or purge. It holds no personal data itself: the subject is
    named by how it was looked up and by the ids of what was found."""

    __tablename__ = "privacy_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # The admin's username, or "retention" for the purge.
    actor: Mapped[str] = mapped_column(String(64))
    # export | erase | purge
    action: Mapped[str] = mapped_column(String(16))
    # phone | email | reference (never the value), or the retention kind purged.
    looked_up_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Why (the request's reference, as the admin gave it).
    reason: Mapped[str] = mapped_column(String(200), default="")
    # What was found or changed: pledge and call ids, rows changed per table.
    summary: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # What the law made us keep: [{kind, table, ids, reason}].
    kept: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)

    __table_args__ = (Index("ix_privacy_actions_at", "at"),)


class PurgedCampaign(Base):
    """A campaign whose screen pops and event payloads the purge has cleared, and the
    end it had then: the next passes skip it (its events are many and done) unless
    it ended again later (calls came in after)."""

    __tablename__ = "privacy_purged_campaigns"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    purged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
