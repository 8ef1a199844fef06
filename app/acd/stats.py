"""Queue statistics (definitions in docs/metrics.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSkill, Call, Queue
from app.acd.states import AgentState, CallState


async def queue_stats(
    session: AsyncSession,
    queue: Queue,
    now: dt.datetime,
    *,
    window_seconds: int,
    short_abandon_seconds: int,
) -> dict[str, Any]:
    since = now - dt.timedelta(seconds=window_seconds)
    threshold = queue.sl_threshold_seconds

    waiting = (
        await session.execute(
            select(func.count(), func.min(Call.queued_at)).where(
                Call.queue_id == queue.id, Call.state == CallState.QUEUED
            )
        )
    ).one()
    oldest = waiting[1]
    longest_wait = round((now - oldest).total_seconds(), 3) if oldest else 0.0

    answered_rows = (
        (
            await session.execute(
                select(Call.wait_seconds).where(
                    Call.queue_id == queue.id,
                    Call.answered_at.is_not(None),
                    Call.answered_at >= since,
                )
            )
        )
        .scalars()
        .all()
    )
    answered = len(answered_rows)
    within = sum(1 for w in answered_rows if w is not None and w <= threshold)
    asa = round(sum(w or 0.0 for w in answered_rows) / answered, 3) if answered else None

    abandoned_rows = (
        (
            await session.execute(
                select(Call.wait_seconds).where(
                    Call.queue_id == queue.id,
                    Call.state == CallState.ABANDONED,
                    Call.ended_at >= since,
                )
            )
        )
        .scalars()
        .all()
    )
    abandoned = len(abandoned_rows)
    short = sum(1 for w in abandoned_rows if (w or 0.0) < short_abandon_seconds)
    counted_abandons = abandoned - short

    offered_now = (
        await session.execute(
            select(func.count()).where(Call.queue_id == queue.id, Call.state == CallState.OFFERED)
        )
    ).scalar_one()

    agents_stmt = select(Agent.state, func.count()).where(Agent.campaign_id == queue.campaign_id)
    if queue.required_skill:
        agents_stmt = agents_stmt.join(
            AgentSkill,
            and_(AgentSkill.agent_id == Agent.id, AgentSkill.skill == queue.required_skill),
        )
    by_state = {state.value: 0 for state in AgentState}
    for state, count in (await session.execute(agents_stmt.group_by(Agent.state))).all():
        by_state[state] = count

    return {
        "queue_id": queue.id,
        "queue": queue.name,
        "window_seconds": window_seconds,
        "calls_waiting": int(waiting[0]),
        "calls_ringing": int(offered_now),
        "longest_wait_seconds": longest_wait,
        "answered": answered,
        "answered_within_threshold": within,
        "service_level_threshold_seconds": threshold,
        "service_level": round(within / answered, 4) if answered else None,
        "service_level_with_abandons": (
            round(within / (answered + counted_abandons), 4)
            if answered + counted_abandons
            else None
        ),
        "average_speed_of_answer_seconds": asa,
        "abandoned": abandoned,
        "abandoned_short": short,
        "agents_by_state": by_state,
    }
