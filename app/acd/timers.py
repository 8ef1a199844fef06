"""Durable timers: rows with a due time that any process may claim.

A timer is written in the transaction that decides it and deleted in the
transaction that acts on it, so a restart loses none and none fires twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Timer
from app.db import UnitOfWork


class TimerKind:
    RING_TIMEOUT = "ring_timeout"
    WRAPUP_END = "wrapup_end"
    MAX_WAIT = "max_wait"
    TIER_WIDEN = "tier_widen"
    SCREEN_GRACE = "screen_grace"
    RULE = "rule_timer"  # a rule's start_timer: fires the rules on timer.<name>


def schedule(
    uow: UnitOfWork,
    kind: str,
    due_at: dt.datetime,
    *,
    call_id: int | None = None,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Timer:
    timer = Timer(kind=kind, due_at=due_at, call_id=call_id, agent_id=agent_id, data=data or {})
    uow.session.add(timer)
    return timer


async def cancel(
    uow: UnitOfWork, kind: str, *, call_id: int | None = None, agent_id: int | None = None
) -> None:
    stmt = delete(Timer).where(Timer.kind == kind)
    if call_id is not None:
        stmt = stmt.where(Timer.call_id == call_id)
    if agent_id is not None:
        stmt = stmt.where(Timer.agent_id == agent_id)
    await uow.session.execute(stmt)


async def cancel_all_for_call(uow: UnitOfWork, call_id: int) -> None:
    await uow.session.execute(delete(Timer).where(Timer.call_id == call_id))


async def due(
    session: AsyncSession, now: dt.datetime, limit: int
) -> list[tuple[int, int | None, int | None]]:
    """Timers due now, oldest first: (id, call id, agent id)."""
    stmt = (
        select(Timer.id, Timer.call_id, Timer.agent_id)
        .where(Timer.due_at <= now)
        .order_by(Timer.due_at)
        .limit(limit)
    )
    return [(t, c, a) for t, c, a in (await session.execute(stmt)).all()]


async def claim(uow: UnitOfWork, timer_id: int) -> Timer | None:
    """Take a timer; None when another process holds it or it was cancelled meanwhile."""
    stmt = select(Timer).where(Timer.id == timer_id).with_for_update(skip_locked=True)
    timer = (await uow.session.execute(stmt)).scalar_one_or_none()
    if timer is not None:
        await uow.session.delete(timer)
    return timer


async def get_due_at(uow: UnitOfWork, kind: str, agent_id: int) -> dt.datetime | None:
    return await get_due_at_in(uow.session, kind, agent_id)


async def get_due_at_in(session: AsyncSession, kind: str, agent_id: int) -> dt.datetime | None:
    stmt = select(Timer.due_at).where(Timer.kind == kind, Timer.agent_id == agent_id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()
