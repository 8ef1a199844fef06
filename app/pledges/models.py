"""Pledge tables: pledges, their audit trail, payments, and idempotency records.

There is deliberately no column for a card number, expiry date or security code:
payment happens on the charity's website, and the pledge carries a reference for it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class PledgeStatus(enum.StrEnum):
    PROMISED = "promised"
    LINK_SENT = "link_sent"
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    CANCELLED = "cancelled"


class CancelReason(enum.StrEnum):
    FAKE = "fake"
    DUPLICATE = "duplicate"
    BAD_CONTACT = "bad_contact"
    DONOR_REQUEST = "donor_request"
    ABANDONED = "abandoned"


class Frequency(enum.StrEnum):
    ONE_OFF = "one_off"
    MONTHLY = "monthly"


class Channel(enum.StrEnum):
    """How the donor will pay. Never a card by phone."""

    WEB_LINK = "web_link"
    CHEQUE = "cheque"
    BANK_TRANSFER = "bank_transfer"


class Pledge(Base):
    __tablename__ = "pledges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Short and unambiguous (no 0/O, 1/I/L): read out to the donor, typed on the payment page.
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), nullable=True
    )
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), nullable=True
    )
    # Copied from the call when saved, so totals by queue need no join through calls.
    queue_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # The E.164 number that called (from the call), for returning-donor look-ups.
    caller_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The volunteer's partner organisation when saved (totals by partner, roll-ups).
    partner_org: Mapped[str | None] = mapped_column(String(200), nullable=True)

    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="FR")
    email: Mapped[str] = mapped_column(String(254), default="")
    # As the donor gave it, and normalised to E.164 when it could be.
    phone: Mapped[str] = mapped_column(String(32), default="")
    phone_e164: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # French département from the postcode (2A/2B for Corsica, 971-976 overseas), or None.
    departement: Mapped[str | None] = mapped_column(String(3), nullable=True)

    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[str] = mapped_column(String(8), default=Frequency.ONE_OFF)
    channel: Mapped[str] = mapped_column(String(16), default=Channel.WEB_LINK)
    consent_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_tax_receipt: Mapped[bool] = mapped_column(Boolean, default=False)
    # The donor agreed their first name and town be shown on air (the tote board).
    consent_board: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Above the campaign's review threshold a supervisor checks the pledge.
    flagged_for_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # The campaign time slot (broadcast segment) the pledge fell in, by name.
    time_slot: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")

    status: Mapped[str] = mapped_column(String(16), default=PledgeStatus.PROMISED)
    cancel_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Sum of recorded payments, kept apart from the promised amount.
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    link_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The Idempotency-Key that saved it (``app/pledges/idempotency.py``): the caller
    # (``user:<id>``), the key's sha256 and the request's hash. The pledge insert
    # claims the key itself (unique index, ``ON CONFLICT DO NOTHING``).
    idem_scope: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idem_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idem_request: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("uq_pledges_idem", "idem_scope", "idem_key", unique=True),
        Index("ix_pledges_campaign_created", "campaign_id", "created_at"),
        Index("ix_pledges_caller_number", "caller_number", "campaign_id"),
        Index("ix_pledges_phone_e164", "phone_e164", "campaign_id"),
        Index("ix_pledges_call", "call_id"),
    )


class PledgeAudit(Base):
    """One change of a pledge: who, when, and the fields before and after."""

    __tablename__ = "pledge_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pledge_id: Mapped[int] = mapped_column(ForeignKey("pledges.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # The username, or "payment-provider" for the signed webhook.
    actor: Mapped[str] = mapped_column(String(64))
    # created | corrected | link_sent | payment | payment_void | cancelled
    action: Mapped[str] = mapped_column(String(16))
    before: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (Index("ix_pledge_audit_pledge", "pledge_id", "at"),)


class PledgePayment(Base):
    """Money received against a pledge, entered by an organiser or sent by the provider."""

    __tablename__ = "pledge_payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pledge_id: Mapped[int] = mapped_column(ForeignKey("pledges.id", ondelete="CASCADE"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # The provider's payment id: a webhook delivered twice records the payment once.
    provider_payment_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    source: Mapped[str] = mapped_column(String(16))  # manual | provider
    recorded_by: Mapped[int | None] = mapped_column(BigId, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A bounced cheque, a refund or a charge-back: the payment no longer counts.
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (Index("ix_pledge_payments_pledge", "pledge_id"),)


class IdempotencyRecord(Base):
    """The first answer to a request carrying an ``Idempotency-Key``.

    Keyed by (scope, key): the scope is the caller (``user:<id>``), so two users'
    keys never collide. The unique constraint is what makes a race safe on
    PostgreSQL; on SQLite the single writer already serialises.
    """

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    # sha256 of the method, path and canonical JSON body.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
        Index("ix_idempotency_keys_created", "created_at"),
    )


ROLLUP_SHARDS = 8


class PledgeRollup(Base):
    """Running totals of a campaign's pledges by dimension and key, kept in shards.

    ``dimension`` is ``all`` (key ``""``), ``slot``, ``hour`` (UTC, ``YYYY-MM-DDTHH:00``),
    ``queue``, ``agent``, ``partner`` or ``departement``; ``key`` is ``""`` for none
    (outside any slot, no queue...). Every pledge change adds its difference to its
    rows in the same transaction (one multi-row upsert), so every total is a sum
    over a few rows, never a scan of the pledges. A pledge's rows are in shard
    ``id % ROLLUP_SHARDS``: concurrent savers spread over several rows instead of
    queueing on one row lock (PostgreSQL).

    ``count``, ``promised_minor`` and ``paid_minor`` cover the pledges not
    cancelled; ``cancelled_count`` and ``cancelled_minor`` the cancelled ones.
    """

    __tablename__ = "pledge_rollups"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    promised_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled_count: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled_minor: Mapped[int] = mapped_column(BigInteger, default=0)
