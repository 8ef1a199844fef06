"""The events table: the outbox and the hotline's history.

Every state change writes its event in the same transaction. ``seq`` is the global
sequence number receivers read by. On PostgreSQL, sequence values are handed out
at insert time, so two concurrent transactions may commit out of ``seq`` order; a
reader that tails the table therefore treats a gap as "not yet committed" for a
short grace period before moving past it (a gap left by a rolled-back transaction
never fills).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class Event(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    queue_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    call_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        Index("ix_events_campaign_seq", "campaign_id", "seq"),
        Index("ix_events_call_id", "call_id"),
        Index("ix_events_agent_id", "agent_id"),
    )

    def as_message(self) -> dict[str, Any]:
        """The wire form used by screens: ``{type, seq, at, data}``."""
        return message_of(self)


def message_of(event: Any) -> dict[str, Any]:
    """The wire form of a committed event, a table row or the unit of work's object.

    Only the attributes ``seq, type, at, campaign_id, queue_id, call_id, agent_id,
    data`` are used: the feed builds a screen message from the events a commit hands
    to ``Database.on_events`` without reading them back from the table.
    """
    return {
        "type": event.type,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "data": {
            **(event.data or {}),
            "campaign_id": event.campaign_id,
            "queue_id": event.queue_id,
            "call_id": event.call_id,
            "agent_id": event.agent_id,
        },
    }
