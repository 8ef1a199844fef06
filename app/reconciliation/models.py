"""Reconciliation tables: saved column mappings, imports, and the imported lines.

No raw line of a file is stored: only the mapped fields (date, amount, the label
and payer name after the card guard, the provider's transaction id) and a key
that makes a second import of the same line a no-op. Payments themselves are
written by ``app/pledges`` (``pledge_payments``), never here.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UTCDateTime, utcnow


class SourceKind(enum.StrEnum):
    # The payment provider whose webhook also reports payments: its transaction id
    # is the webhook's payment id, so a payment already seen there is not counted again.
    PROVIDER = "provider"
    BANK = "bank"


class LineStatus(enum.StrEnum):
    RECORDED = "recorded"  # a payment was recorded for this line
    ALREADY_RECORDED = "already_recorded"  # the provider's webhook had recorded it
    UNMATCHED = "unmatched"  # waits for an organiser to pick the pledge
    DISMISSED = "dismissed"  # an organiser said it is no pledge's payment
    IGNORED = "ignored"  # not money received (a debit, a fee, zero)


class MatchMethod(enum.StrEnum):
    REFERENCE = "reference"
    AMOUNT_NAME = "amount_name"
    MANUAL = "manual"


class PaymentSource(Base):
    """How to read one provider's or bank's CSV export (the saved column mapping)."""

    __tablename__ = "payment_sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=SourceKind.BANK)
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    decimal_separator: Mapped[str] = mapped_column(String(1), default=".")
    encoding: Mapped[str] = mapped_column(String(16), default="utf-8")
    date_format: Mapped[str] = mapped_column(String(32), default="%Y-%m-%d")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    # {"date": "Date", "amount": "Montant", "reference": "Libellé", ...}: field -> header.
    columns: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentImport(Base):
    """One file imported: who, when, and what became of its lines."""

    __tablename__ = "payment_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("payment_sources.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200), default="")
    file_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    recorded: Mapped[int] = mapped_column(Integer, default=0)
    already_recorded: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    masked: Mapped[int] = mapped_column(Integer, default=0)
    recorded_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_payment_imports_campaign", "campaign_id", "imported_at"),)


class PaymentLine(Base):
    """One line of an imported file, and the pledge it paid (or may have paid)."""

    __tablename__ = "payment_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("payment_imports.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("payment_sources.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    # "id:<transaction id>" or "sha256:<digest of the line>": unique per source, so
    # the same line imported again records nothing.
    line_key: Mapped[str] = mapped_column(String(160))
    transaction_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    booked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    label: Mapped[str] = mapped_column(Text, default="")
    payer: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(200), default="")
    pledge_id: Mapped[int | None] = mapped_column(
        ForeignKey("pledges.id", ondelete="SET NULL"), nullable=True
    )
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # 0-100: how sure the match is (100 by reference or by an organiser's choice).
    confidence: Mapped[int] = mapped_column(Integer, default=0)
    # Unmatched lines: [{"pledge_id", "confidence"}], best first.
    suggestions: Mapped[list[Any]] = mapped_column(Json, default=list)
    # Money received minus what the pledge was owed (one instalment for a monthly
    # pledge): above zero an over-payment, below an under-payment.
    difference_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    matched_by: Mapped[int | None] = mapped_column(BigId, nullable=True)
    matched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("source_id", "line_key", name="uq_payment_lines_source_key"),
        Index("ix_payment_lines_campaign_status", "campaign_id", "status"),
        Index("ix_payment_lines_import", "import_id"),
    )
