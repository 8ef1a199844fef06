"""Commands to the telephony platform, written to an outbox in the deciding transaction.

They are pushed to the callback URL by ``app.telephony.delivery`` (or consumed by the
simulated platform) and can always be read by polling ``GET /telephony/commands``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.outbox import Command, CommandName, issue

__all__ = ["CommandName", "as_message", "issue", "read_after"]


def as_message(row: Command) -> dict[str, Any]:
    return {
        "id": row.id,
        "command": row.command,
        "call_id": row.provider_call_id,
        "args": row.args,
        "created_at": row.created_at.isoformat(),
    }


async def read_after(
    session: AsyncSession,
    after: int,
    limit: int,
    *,
    gap_grace: dt.timedelta = dt.timedelta(0),
    now: dt.datetime | None = None,
) -> list[Command]:
    """Commands after ``after``, oldest first, stopping before a gap that may yet fill.

    On PostgreSQL an id is taken when a transaction writes the row, not when it
    commits: id 101 can become visible after 102. A poller that took 102 and moved
    on would never see 101. So the answer stops before a missing id while the row
    after the gap is younger than ``gap_grace``; an older gap is a rolled-back
    transaction (ids are never reused) and is passed. SQLite has one writer at a
    time, so its ids commit in order (grace 0).
    """
    stmt = select(Command).where(Command.id > after).order_by(Command.id).limit(limit)
    rows = list((await session.execute(stmt)).scalars())
    if not gap_grace:
        return rows
    settled_before = (now or utcnow()) - gap_grace
    out: list[Command] = []
    # after=0: a first poll, with no position to keep; it starts at the first row.
    expected = after + 1 if after else (rows[0].id if rows else 1)
    for row in rows:
        if row.id != expected and row.created_at > settled_before:
            break  # a lower id may still commit: the poller gets it first, next time
        out.append(row)
        expected = row.id + 1
    return out
