"""The personal data of surge paging: the SMS pages' copies of volunteers' numbers.

A standby volunteer's phone number (``standby_volunteers.phone``) is kept while they
are a volunteer of the campaign (deleted with the agent). Each SMS page copies it
into the outbox (``sms_outbox.to_number``, with the text); once settled (delivered
or failed) the copy serves nothing, and the retention purge deletes it after
``PLEDGELINE_RETENTION_SCREEN_POP_DAYS``. The page itself (who, when, answered)
stays: it holds no number.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from app.db import UnitOfWork
from app.privacy.retention import RetentionKind
from app.settings import Settings
from app.surge.models import SmsMessage


async def purge_sms_pages(
    uow: UnitOfWork, before: dt.datetime, now: dt.datetime, settings: Settings
) -> int:
    """Settled SMS pages written before ``before`` are deleted (pending ones wait)."""
    result = await uow.session.execute(
        delete(SmsMessage)
        .where(SmsMessage.created_at < before, SmsMessage.delivery != "pending")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


RETENTION = RetentionKind(
    "sms_pages",
    "volunteers' phone numbers copied into settled SMS pages",
    lambda now, s: now - dt.timedelta(days=s.retention_screen_pop_days),
    purge_sms_pages,
)
