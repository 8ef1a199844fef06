"""Telephony tables: inbound events seen (idempotency). Commands to the platform are in
``app.outbox`` (the core writes them), named here too."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, Json, UTCDateTime, utcnow
from app.outbox import Command

__all__ = ["Command", "InboundEvent"]


class InboundEvent(Base):
    """A provider event already handled, with the answer it got.

    A duplicate delivery gets this answer back and changes nothing.
    """

    __tablename__ = "telephony_inbound"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str] = mapped_column(String(128), index=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
