"""Roster tables beyond the volunteer itself: shifts and who signed up to them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime, utcnow


class Shift(Base):
    """A time slot at a site with a number of seats to fill (docs/roster.md, Shifts).

    Stored in UTC like every time; the site's time zone turns it back into the
    "20:00-00:00" a centre manager reads, a slot crossing midnight included.
    """

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    seats: Mapped[int] = mapped_column(Integer, default=1)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_shifts_site_starts", "site_id", "starts_at"),)


class ShiftSignup(Base):
    """A volunteer signed up to a shift; attendance is read from their seat sessions."""

    __tablename__ = "shift_signups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # Who signed them up: "admin", "supervisor", "import" or "self".
    source: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("shift_id", "agent_id", name="uq_shift_signups_shift_agent"),
        Index("ix_shift_signups_agent", "agent_id"),
    )
