"""CTI tables: the screen pop assembled for each call."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class ScreenPop(Base):
    """What the volunteer's screen shows about the caller (docs/directory.md).

    One row per call, written by ``app.cti.service.CallerLookup.lookup``; a second
    look-up of the same call replaces it.
    """

    __tablename__ = "screen_pops"

    call_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # The directory look-up's status: found, not_found, timeout... (app.cti.directory.Status).
    status: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
