"""Receipt tables: issuing organisations, which campaign receipts for which one, the
numbering counters, and the receipts themselves.

A receipt keeps a copy of everything it printed (donor, amount, organisation), so a
duplicata prints the same document whatever changed on the pledge since, and the
receipt outlives a pledge erased for privacy (the law keeps receipts).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow

LIVE_RECEIPT_SQL = "status = 'issued'"
# The articles of the Code général des impôts a receipt may name.
TAX_ARTICLES = ("200", "238 bis", "978")


class ReceiptStatus(enum.StrEnum):
    ISSUED = "issued"
    CANCELLED = "cancelled"


class ReceiptOrganisation(Base):
    """The charity that receives the donations and signs the receipts."""

    __tablename__ = "receipt_organisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    address: Mapped[str] = mapped_column(Text, default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    # The Cerfa's "Objet": what the organisation does.
    purpose: Mapped[str] = mapped_column(Text, default="")
    # SIREN/SIRET and RNA (répertoire national des associations) numbers.
    siren: Mapped[str] = mapped_column(String(32), default="")
    rna: Mapped[str] = mapped_column(String(32), default="")
    # Which kind of body it is, as the Cerfa words it ("Œuvre ou organisme d'intérêt général").
    legal_status: Mapped[str] = mapped_column(Text, default="")
    # A subset of TAX_ARTICLES.
    tax_articles: Mapped[list[str]] = mapped_column(Json, default=list)
    signatory_name: Mapped[str] = mapped_column(String(200), default="")
    signatory_title: Mapped[str] = mapped_column(String(200), default="")
    signature_place: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiptCampaign(Base):
    """The organisation a campaign's receipts are issued by (several campaigns may share one)."""

    __tablename__ = "receipt_campaigns"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("receipt_organisations.id", ondelete="RESTRICT")
    )


class ReceiptCounter(Base):
    """The last number given to an organisation's receipts in a year.

    Incremented by ``UPDATE ... RETURNING`` inside the transaction that writes the
    receipt: the row lock queues concurrent issuers and a rolled-back issue gives
    its number back, so the sequence has no gap and no duplicate.
    """

    __tablename__ = "receipt_counters"

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("receipt_organisations.id", ondelete="RESTRICT"),
        primary_key=True,
        autoincrement=False,
    )
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class Receipt(Base):
    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("receipt_organisations.id", ondelete="RESTRICT")
    )
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(BigInteger)
    campaign_id: Mapped[int] = mapped_column(BigId)
    # Kept when the pledge is erased: the receipt is then its own record.
    pledge_id: Mapped[int | None] = mapped_column(
        ForeignKey("pledges.id", ondelete="SET NULL"), nullable=True
    )
    pledge_reference: Mapped[str] = mapped_column(String(16))

    donor_first_name: Mapped[str] = mapped_column(String(100), default="")
    donor_last_name: Mapped[str] = mapped_column(String(100), default="")
    donor_address: Mapped[str] = mapped_column(Text, default="")
    donor_postcode: Mapped[str] = mapped_column(String(16), default="")
    donor_city: Mapped[str] = mapped_column(String(100), default="")
    donor_country: Mapped[str] = mapped_column(String(2), default="FR")
    donor_email: Mapped[str] = mapped_column(String(254), default="")

    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The pledge's channel: web_link (card online), cheque, bank_transfer.
    payment_mode: Mapped[str] = mapped_column(String(16))
    # The organisation's details as printed (they may change later).
    organisation: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    status: Mapped[str] = mapped_column(String(16), default=ReceiptStatus.ISSUED)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_by: Mapped[str] = mapped_column(String(64), default="")
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # PDFs made so far: the first is the original, every later one says "duplicata".
    copies: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_to: Mapped[str | None] = mapped_column(String(254), nullable=True)

    __table_args__ = (
        UniqueConstraint("organisation_id", "year", "number", name="uq_receipts_number"),
        # One live receipt per pledge; a cancelled one leaves room for a new number.
        Index(
            "uq_receipts_pledge_live",
            "pledge_id",
            unique=True,
            postgresql_where=text(LIVE_RECEIPT_SQL),
            sqlite_where=text(LIVE_RECEIPT_SQL),
        ),
        Index("ix_receipts_campaign", "campaign_id", "id"),
    )
