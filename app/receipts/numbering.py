"""The unbroken sequence of receipt numbers, per organisation and year.

``next_number`` must run inside the transaction that writes the receipt. The
counter row is created if missing (``INSERT ... ON CONFLICT DO NOTHING``) and then
incremented with ``UPDATE ... RETURNING``: on PostgreSQL the row lock holds every
other issuer of that organisation and year until this transaction ends, and if it
rolls back the number goes back with it. Numbers are thus handed out in commit
order with no gap; the unique index ``uq_receipts_number`` refuses a duplicate
whatever the code above it does. On SQLite the single writer serialises the same.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, update

from app.db import UnitOfWork
from app.receipts.models import ReceiptCounter

COUNTERS = cast(Table, ReceiptCounter.__table__)


async def next_number(uow: UnitOfWork, organisation_id: int, year: int) -> int:
    session = uow.session
    await session.execute(
        uow.db.insert_or_ignore(COUNTERS).values(
            organisation_id=organisation_id, year=year, last_number=0
        )
    )
    number = await session.scalar(
        update(COUNTERS)
        .where(COUNTERS.c.organisation_id == organisation_id, COUNTERS.c.year == year)
        .values(last_number=COUNTERS.c.last_number + 1)
        .returning(COUNTERS.c.last_number)
    )
    assert number is not None
    return int(number)
