"""What a screen needs to draw itself from scratch (first connect, or resync)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import repository, stats, timers
from app.acd.models import Agent, Call, Queue
from app.acd.timers import TimerKind
from app.cti.service import stored_pop
from app.db import utcnow
from app.settings import get_settings
from app.surge.paging import open_pages

log = logging.getLogger(__name__)


def call_view(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "state": call.state,
        "caller_number": call.caller_number,
        "caller_number_issue": call.caller_number_issue,
        "queue_id": call.queue_id,
        "received_at": call.received_at.isoformat(),
        "queued_at": call.queued_at.isoformat() if call.queued_at else None,
        "offered_at": call.offered_at.isoformat() if call.offered_at else None,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "wait_seconds": call.wait_seconds,
        "tags": call.tags or [],
        "kind": call.kind,
        # A warm hand-over in progress: {leg_id, queue, until} (the fallback's time).
        "consult": (call.context or {}).get("consult"),
    }


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "display_name": agent.display_name,
        "state": agent.state,
        "pause_reason": agent.pause_reason,
        "pending_state": agent.pending_state,
        "state_since": agent.state_since.isoformat(),
        "current_call_id": agent.current_call_id,
        "calls_taken": agent.calls_taken,
        "screen": agent.screens_open > 0,
        "site_id": agent.site_id,
    }


async def agent_snapshot(session: AsyncSession, agent_id: int) -> dict[str, Any]:
    agent = await repository.get_agent(session, agent_id)
    call = await session.get(Call, agent.current_call_id) if agent.current_call_id else None
    wrapup_until = None
    if agent.state == "wrap_up":
        due = await timers.get_due_at_in(session, TimerKind.WRAPUP_END, agent.id)
        wrapup_until = due.isoformat() if due else None
    queue_names = {
        q.id: q.name
        for q in (
            await session.execute(select(Queue).where(Queue.campaign_id == agent.campaign_id))
        ).scalars()
    }
    screen_pop = await stored_pop(session, call.id) if call else None
    script = await _script(session, call, agent.id) if call else None
    # Pages of the last hour not answered yet: a screen opened after the page shows it.
    pages = await open_pages(session, agent.id, utcnow() - dt.timedelta(hours=1))
    return {
        "pages": [
            {"page_id": p.id, "message": p.message, "paged_at": p.paged_at.isoformat()}
            for p in pages
        ],
        "agent": agent_view(agent),
        "call": {**call_view(call), "screen_pop": screen_pop, "script": script} if call else None,
        "wrapup_until": wrapup_until,
        "queues": queue_names,
    }


async def _script(session: AsyncSession, call: Call, agent_id: int) -> dict[str, Any] | None:
    """The script on the volunteer's screen for this call (rules and scripts, app/rules)."""
    from app.rules.engine import script_for_call

    try:
        return await script_for_call(session, get_settings(), call, agent_id, utcnow())
    except Exception:
        log.exception("script for call %s could not be rendered", call.id)
        return None


async def supervisor_snapshot(
    session: AsyncSession,
    campaign_id: int | None,
    now: dt.datetime,
    *,
    window_seconds: int,
    short_abandon_seconds: int,
    site_id: int | None = None,
) -> dict[str, Any]:
    """The supervisor's screen: the queues, and the volunteers (of one site, for a
    site-scoped supervisor: ``site_id``)."""
    queue_stmt = select(Queue).order_by(Queue.id)
    agent_stmt = select(Agent).order_by(Agent.id)
    if campaign_id is not None:
        queue_stmt = queue_stmt.where(Queue.campaign_id == campaign_id)
        agent_stmt = agent_stmt.where(Agent.campaign_id == campaign_id)
    if site_id is not None:
        agent_stmt = agent_stmt.where(Agent.site_id == site_id)
    queues = list((await session.execute(queue_stmt)).scalars())
    agents = list((await session.execute(agent_stmt)).scalars())
    return {
        "campaign_id": campaign_id,
        "site_id": site_id,
        "queues": [
            await stats.queue_stats(
                session,
                queue,
                now,
                window_seconds=window_seconds,
                short_abandon_seconds=short_abandon_seconds,
            )
            for queue in queues
        ],
        "agents": [agent_view(a) for a in agents],
    }
