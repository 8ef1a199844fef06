"""Prank strikes and blocked numbers, per campaign.

A strike is counted against a caller number (by a rule or a supervisor); a number
blocked until a time in the future is turned away in ``lifecycle.receive`` before
anything else happens to its call.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UnitOfWork
from app.realtime.outbox import emit
from app.rules.facts import forget_caller_records
from app.rules.models import NumberBlock


async def _row(uow: UnitOfWork, campaign_id: int, number: str, now: dt.datetime) -> NumberBlock:
    stmt = (
        select(NumberBlock)
        .where(NumberBlock.campaign_id == campaign_id, NumberBlock.number == number)
        .with_for_update()
    )
    row = (await uow.session.execute(stmt)).scalar_one_or_none()
    if row is None:
        row = NumberBlock(
            campaign_id=campaign_id,
            number=number,
            strikes=0,
            created_at=now,
            updated_at=now,
            updated_by="",
        )
        uow.session.add(row)
    return row


def _emit(uow: UnitOfWork, type: str, row: NumberBlock, **data: object) -> None:
    emit(
        uow,
        type,
        campaign_id=row.campaign_id,
        data={
            "number": row.number,
            "strikes": row.strikes,
            "blocked_until": row.blocked_until.isoformat() if row.blocked_until else None,
            "reason": row.reason,
            "by": row.updated_by,
            **data,
        },
    )


async def strike(
    uow: UnitOfWork,
    campaign_id: int,
    number: str,
    now: dt.datetime,
    *,
    by: str,
    block_after: int = 0,
    block_seconds: int = 86400,
    reason: str = "prank",
) -> NumberBlock:
    """One more strike; at ``block_after`` strikes (0: never) the number is blocked."""
    forget_caller_records(uow.memo)
    row = await _row(uow, campaign_id, number, now)
    row.strikes += 1
    row.updated_by, row.updated_at, row.reason = by, now, reason
    _emit(uow, "number.struck", row)
    if block_after and row.strikes >= block_after and not is_blocked(row, now):
        await block(uow, campaign_id, number, now, by=by, seconds=block_seconds, reason=reason)
    return row


async def block(
    uow: UnitOfWork,
    campaign_id: int,
    number: str,
    now: dt.datetime,
    *,
    by: str,
    seconds: int,
    reason: str,
) -> NumberBlock:
    forget_caller_records(uow.memo)
    row = await _row(uow, campaign_id, number, now)
    row.blocked_until = now + dt.timedelta(seconds=seconds)
    row.updated_by, row.updated_at, row.reason = by, now, reason
    _emit(uow, "number.blocked", row)
    return row


async def unblock(
    uow: UnitOfWork, campaign_id: int, number: str, now: dt.datetime, *, by: str
) -> NumberBlock | None:
    """Lift a block and forget the strikes (the number starts afresh)."""
    stmt = (
        select(NumberBlock)
        .where(NumberBlock.campaign_id == campaign_id, NumberBlock.number == number)
        .with_for_update()
    )
    row = (await uow.session.execute(stmt)).scalar_one_or_none()
    if row is None:
        return None
    row.blocked_until = None
    row.strikes = 0
    row.updated_by, row.updated_at = by, now
    _emit(uow, "number.unblocked", row)
    return row


def is_blocked(row: NumberBlock | None, now: dt.datetime) -> bool:
    return row is not None and row.blocked_until is not None and row.blocked_until > now


async def blocked_row(
    session: AsyncSession, campaign_id: int, number: str, now: dt.datetime
) -> NumberBlock | None:
    stmt = select(NumberBlock).where(
        NumberBlock.campaign_id == campaign_id,
        NumberBlock.number == number,
        NumberBlock.blocked_until > now,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def listing(
    session: AsyncSession, campaign_id: int, now: dt.datetime, *, blocked_only: bool = False
) -> list[NumberBlock]:
    """Numbers with strikes or a block, blocked ones first, then most recent."""
    stmt = select(NumberBlock).where(NumberBlock.campaign_id == campaign_id)
    if blocked_only:
        stmt = stmt.where(NumberBlock.blocked_until > now)
    else:
        stmt = stmt.where(or_(NumberBlock.strikes > 0, NumberBlock.blocked_until > now))
    rows = list((await session.execute(stmt.order_by(NumberBlock.updated_at.desc()))).scalars())
    return sorted(rows, key=lambda r: not is_blocked(r, now))
