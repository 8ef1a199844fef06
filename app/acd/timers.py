"""Durable timers: rows with a due time that any process may claim.

A timer is written in the transaction that decides it and deleted in the
transaction that acts on it, so a restart loses none and none fires twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Timer
from app.db import UnitOfWork, built_once


class TimerKind:
    RING_TIMEOUT = "ring_timeout"
    WRAPUP_END = "wrapup_end"
    MAX_WAIT = "max_wait"
    TIER_WIDEN = "tier_widen"
    SCREEN_GRACE = "screen_grace"
    RULE = "rule_timer"  # a rule's start_timer: fires the rules on timer.<name>
    # Expected wait and callbacks (app/acd/callbacks.py).
    WAIT_ANNOUNCE = "wait_announce"
    CALLBACK_RETRY = "callback_retry"
    CALLBACK_EXPIRY = "callback_expiry"
    DIAL_TIMEOUT = "dial_timeout"
    # A consult leg's fallback (lifecycle.consult): no specialist answered in time.
    CONSULT_FALLBACK = "consult_fallback"


TIMERS = cast(Table, Timer.__table__)


def schedule(
    uow: UnitOfWork,
    kind: str,
    due_at: dt.datetime,
    *,
    call_id: int | None = None,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Stage a timer: written with the unit of work's other timers in one INSERT."""
    row = {
        "kind": kind,
        "due_at": due_at,
        "call_id": call_id,
        "agent_id": agent_id,
        "data": data or {},
    }
    uow.stage(TIMERS, row)
    uow.timers_scheduled(due_at)


async def cancel(
    uow: UnitOfWork,
    kind: str,
    *,
    call_id: int | None = None,
    agent_id: int | None = None,
    stored: bool = True,
) -> None:
    """Cancel timers of a kind for a call and/or agent.

    ``stored=False`` when the caller knows none was committed before this unit of
    work (the call was offered in this very transaction): no DELETE is sent.
    """

    def matches(row: dict[str, Any]) -> bool:
        return (
            row["kind"] == kind
            and (call_id is None or row["call_id"] == call_id)
            and (agent_id is None or row["agent_id"] == agent_id)
        )

    uow.unstage(TIMERS, matches)
    if not stored:
        return
    params = {"p_kind": kind, "p_call": call_id, "p_agent": agent_id}
    await uow.session.execute(_cancel_statement(call_id is not None, agent_id is not None), params)


async def cancel_all_for_call(uow: UnitOfWork, call_id: int, *, stored: bool = True) -> None:
    uow.unstage(TIMERS, lambda row: row["call_id"] == call_id)
    if stored:
        await uow.session.execute(_CANCEL_ALL_FOR_CALL, {"p_call": call_id})


# The DELETEs of the call path, built once (bound per call) on the table itself, not
# through the ORM: no session objects are timers' rows (they are staged, app/db.py).
_CANCEL_ALL_FOR_CALL = delete(TIMERS).where(TIMERS.c.call_id == bindparam("p_call"))


def _cancel_statement(by_call: bool, by_agent: bool) -> Any:
    def build() -> Any:
        stmt = delete(TIMERS).where(TIMERS.c.kind == bindparam("p_kind"))
        if by_call:
            stmt = stmt.where(TIMERS.c.call_id == bindparam("p_call"))
        if by_agent:
            stmt = stmt.where(TIMERS.c.agent_id == bindparam("p_agent"))
        return stmt

    return built_once(("timer cancel", by_call, by_agent), build)


async def due(
    session: AsyncSession, now: dt.datetime, limit: int
) -> tuple[list[tuple[int, int | None, int | None]], dt.datetime | None]:
    """Timers due now, oldest first, as (id, call id, agent id); and when the next
    one not yet due is due (None: none within this batch)."""
    stmt = (
        select(Timer.id, Timer.call_id, Timer.agent_id, Timer.due_at)
        .order_by(Timer.due_at)
        .limit(limit + 1)
    )
    due_now: list[tuple[int, int | None, int | None]] = []
    for timer_id, call_id, agent_id, due_at in (await session.execute(stmt)).all():
        if due_at > now:
            return due_now, due_at
        if len(due_now) == limit:
            return due_now, due_at
        due_now.append((timer_id, call_id, agent_id))
    return due_now, None


async def claim(uow: UnitOfWork, timer_id: int) -> Timer | None:
    """Take a timer; None when another process holds it or it was cancelled meanwhile."""
    stmt = select(Timer).where(Timer.id == timer_id).with_for_update(skip_locked=True)
    timer = (await uow.session.execute(stmt)).scalar_one_or_none()
    if timer is not None:
        await uow.session.delete(timer)
        # Deleted now, not at the next autoflush: the handler's own cancels are plain
        # DELETEs of the table, which neither flush nor see the session's pending one.
        await uow.session.flush()
    return timer


async def get_due_at(uow: UnitOfWork, kind: str, agent_id: int) -> dt.datetime | None:
    return await get_due_at_in(uow.session, kind, agent_id)


async def get_due_at_in(session: AsyncSession, kind: str, agent_id: int) -> dt.datetime | None:
    stmt = select(Timer.due_at).where(Timer.kind == kind, Timer.agent_id == agent_id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()
