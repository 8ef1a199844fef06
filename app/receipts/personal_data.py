"""The personal data on tax receipts: kept when a donor asks to be erased, removed
after the legal period.

A receipt is a tax document: the charity must be able to show it, with the donor's
name and address as printed, for six years (Livre des procédures fiscales,
art. L102 B). The erasure of personal data (``app/privacy``) leaves the donor's
receipts as they are and records why; everything else of theirs goes. The
receipt keeps its own copy of what it printed, so the pledge itself can be erased.
Past the legal period (``PLEDGELINE_RETENTION_PLEDGE_YEARS``, the same as the
pledges') the retention purge blanks the donor's details on the receipt; its
number, amount, dates and organisation stay, so the sequence and totals still add up.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update

from app.db import UnitOfWork
from app.privacy.erasure import Kept
from app.privacy.retention import RetentionKind, months_before
from app.privacy.subjects import Subject
from app.receipts.models import Receipt
from app.settings import Settings

REASON = "Livre des procédures fiscales, art. L102 B: a tax receipt is kept 6 years"


async def receipts_kept(uow: UnitOfWork, subject: Subject) -> list[Kept]:
    """The donor's receipts (by their pledges' ids or references), cancelled ones too."""
    if not subject.pledge_ids and not subject.references:
        return []
    ids = list(
        await uow.session.scalars(
            select(Receipt.id)
            .where(
                or_(
                    Receipt.pledge_id.in_(subject.pledge_ids),
                    Receipt.pledge_reference.in_(subject.references),
                )
            )
            .order_by(Receipt.id)
        )
    )
    return [Kept("tax_receipt", "receipts", ids, REASON)] if ids else []


_DONOR_DETAILS = (
    Receipt.donor_first_name,
    Receipt.donor_last_name,
    Receipt.donor_address,
    Receipt.donor_postcode,
    Receipt.donor_city,
    Receipt.donor_email,
)


async def purge_receipts(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """Receipts issued before ``before`` lose the donor's details (and where sent)."""
    result = await uow.session.execute(
        update(Receipt)
        .where(Receipt.issued_at < before, or_(*(column != "" for column in _DONOR_DETAILS)))
        .values({column: "" for column in _DONOR_DETAILS} | {Receipt.sent_to: None})
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


RETENTION = RetentionKind(
    "receipts",
    "donors' details on tax receipts (the legal period)",
    lambda now, s: months_before(now, 12 * s.retention_pledge_years),
    purge_receipts,
)
