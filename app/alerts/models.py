"""Who acknowledged a supervisor alert, and when. The alert itself is its
``supervisor.alert`` event (``events``): kept with the campaign's history and
scrubbed with it by the retention purge; only the acknowledgement is stored here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class AlertAcknowledgement(Base):
    __tablename__ = "alert_acknowledgements"

    # The alert's event; one acknowledgement each (the first supervisor's).
    event_seq: Mapped[int] = mapped_column(
        ForeignKey("events.seq", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # The name as it was (a user deleted later still reads in the history).
    username: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
