"""Telephony tables: inbound events seen (idempotency) and commands to the platform."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


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


class Command(Base):
    """A command for the platform, written in the transaction that decided it."""

    __tablename__ = "telephony_commands"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(16))
    provider_call_id: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Push delivery to the callback URL: pending, delivered, failed.
    delivery: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_telephony_commands_delivery", "delivery", "next_attempt_at"),)
