"""Issued tax receipts are kept when a donor asks to be erased.

A receipt is a tax document: the charity must be able to show it, with the donor's
name and address as printed, for six years (Livre des procédures fiscales,
art. L102 B). The erasure of personal data (``app/privacy``) leaves the donor's
receipts as they are and records why; everything else of theirs goes. The
receipt keeps its own copy of what it printed, so the pledge itself can be erased.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from app.db import UnitOfWork
from app.privacy.erasure import Kept
from app.privacy.subjects import Subject
from app.receipts.models import Receipt

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
