"""Surge tables: each queue's thresholds and state, volunteers on standby, pages, SMS outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class QueueSurge(Base):
    """A queue's surge thresholds (enter / leave pairs) and whether it is in surge now.

    A queue enters surge when any enter threshold is crossed and leaves it only when
    every measure is back past its leave threshold (for ``leave_after_seconds``).
    Service levels are fractions (0.8 = 80 %); lower is worse.
    """

    __tablename__ = "queue_surges"

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    enter_waiting: Mapped[int | None] = mapped_column(Integer, nullable=True)
    leave_waiting: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enter_wait_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    leave_wait_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    enter_service_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    leave_service_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    leave_after_seconds: Mapped[int] = mapped_column(Integer, default=0)
    # The state, switched by a conditional UPDATE (one process wins).
    surge: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Which threshold started the surge: waiting, expected_wait or service_level.
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The measures at the switch, for the supervisor's screen.
    measures: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # In surge: since when every measure has been past its leave threshold.
    calm_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_queue_surges_campaign", "campaign_id"),)


class Standby(Base):
    """A volunteer's standby sign-up and the number an SMS page goes to.

    Also the quiet period's guard: ``last_paged_at`` is set by a conditional UPDATE,
    so one volunteer is paged once per quiet period whatever the processes.
    """

    __tablename__ = "standby_volunteers"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    standby: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)  # E.164
    last_paged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_standby_volunteers_campaign", "campaign_id", "standby"),)


class Page(Base):
    """One volunteer called in, and their answer."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    queue_id: Mapped[int | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL"), nullable=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # Who paged: "rule:<name>" or the supervisor's user name.
    paged_by: Mapped[str] = mapped_column(String(100))
    paged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Why the volunteer counted as standby: standby (signed up) or break (paused).
    standby_as: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # none (no SMS), pending, delivered, failed.
    sms: Mapped[str] = mapped_column(String(16), default="none")

    __table_args__ = (
        Index("ix_pages_campaign_paged_at", "campaign_id", "paged_at"),
        Index("ix_pages_agent", "agent_id", "paged_at"),
    )


class SmsMessage(Base):
    """An SMS page waiting to be posted to the provider's webhook (an outbox)."""

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    # Sent in the body: the provider drops a second delivery of the same key.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    to_number: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # pending, delivered, failed.
    delivery: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_sms_outbox_delivery", "delivery", "next_attempt_at"),)


QUEUE_SURGES = QueueSurge.__table__
STANDBY = Standby.__table__
PAGES = Page.__table__
SMS_OUTBOX = SmsMessage.__table__
