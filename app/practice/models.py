"""The practice calls' one table: nothing of a practice call lives anywhere else.

A practice call is never a row of ``calls``, its pledge never a row of
``pledges``, its prank never a strike: the figures (totals, exports, statistics,
blocklists) read those tables only, so practice cannot reach them by
construction (docs/roster.md, Practice calls).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class PracticeCall(Base):
    """One practice call: its scenario, what the volunteer did, and its scorecard."""

    __tablename__ = "practice_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    scenario: Mapped[str] = mapped_column(String(40))
    # "open" while it runs, "ended" once scored.
    state: Mapped[str] = mapped_column(String(16), default="open")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the volunteer did, in order: [{"at", "action", ...}] (never a card number).
    actions: Mapped[list[Any]] = mapped_column(Json, default=list)
    # The last pledge the form saved, as validated (a practice reference, no pledge row).
    draft: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    # Saves refused by the card guard (the value itself is never kept).
    card_attempts: Mapped[int] = mapped_column(Integer, default=0)
    scorecard: Mapped[list[Any] | None] = mapped_column(Json, nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)

    __table_args__ = (Index("ix_practice_calls_agent_state", "agent_id", "state"),)
