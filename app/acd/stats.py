"""Queue statistics (definitions in docs/metrics.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import expected_wait
from app.acd.models import CALL_KIND_CALLBACK, CALL_KIND_INBOUND, Agent, AgentSkill, Call, Queue
from app.acd.states import AgentState, CallState

# The waiting calls listed one by one (with their place and expected wait).
LISTED_WAITING = 50
# Calls: the figures below are of callers on the line; callbacks have their own.
_INBOUND = Call.kind == CALL_KIND_INBOUND


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
                Call.queue_id == queue.id, Call.state == CallState.QUEUED, _INBOUND
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
                    _INBOUND,
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
                    _INBOUND,
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
            select(func.count()).where(
                Call.queue_id == queue.id, Call.state == CallState.OFFERED, _INBOUND
            )
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
        "service_level_target_percent": queue.sl_target_percent,
        "service_level_amber_percent": queue.sl_amber_percent,
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
        **await wait_figures(session, queue, now),
        "callbacks": await callback_figures(session, queue, since),
    }


async def wait_figures(session: AsyncSession, queue: Queue, now: dt.datetime) -> dict[str, Any]:
    """The queue's expected wait (docs/surge.md#expected-wait) and each waiting call's."""
    load = (await expected_wait.queue_loads(session, [queue.id], now))[queue.id]
    order = (await expected_wait.queued_positions(session, [queue.id])).get(queue.id, [])
    return {
        "expected_wait_seconds": expected_wait.rounded(load.expected_wait_seconds),
        "waiting_with_callbacks": load.waiting,
        "serving_agents": load.serving,
        "free_agents": load.free,
        "handle_seconds": round(load.handle_seconds, 1),
        "waiting_list": [
            {
                "call_id": call_id,
                "kind": kind,
                "position": position,
                "expected_wait_seconds": expected_wait.rounded(load.wait_at(position)),
            }
            for position, (call_id, kind) in enumerate(order[:LISTED_WAITING], start=1)
        ],
    }


async def callback_figures(
    session: AsyncSession, queue: Queue, since: dt.datetime
) -> dict[str, Any]:
    """Callbacks as their own kind: requested in the window, ended in the window by
    outcome, waiting now (in the queue or for a retry), and the failed ones listed."""
    of_queue = and_(Call.queue_id == queue.id, Call.kind == CALL_KIND_CALLBACK)
    requested = (
        await session.execute(select(func.count()).where(of_queue, Call.received_at >= since))
    ).scalar_one()
    ended = dict(
        (
            await session.execute(
                select(Call.state, func.count())
                .where(of_queue, Call.ended_at >= since)
                .group_by(Call.state)
            )
        ).all()
    )
    live = dict(
        (
            await session.execute(
                select(Call.state, func.count())
                .where(
                    of_queue,
                    Call.state.in_(
                        [
                            CallState.QUEUED,
                            CallState.RETRY_WAIT,
                            CallState.OFFERED,
                            CallState.DIALING,
                        ]
                    ),
                )
                .group_by(Call.state)
            )
        ).all()
    )
    failed_rows = (
        await session.execute(
            select(Call.id, Call.caller_number, Call.state, Call.ended_at, Call.dial_attempts)
            .where(
                of_queue,
                Call.state.in_([CallState.FAILED, CallState.EXPIRED]),
                Call.ended_at >= since,
            )
            .order_by(Call.ended_at.desc())
            .limit(LISTED_WAITING)
        )
    ).all()
    return {
        "requested": int(requested),
        "waiting": int(live.get(CallState.QUEUED, 0) + live.get(CallState.RETRY_WAIT, 0)),
        "in_progress": int(live.get(CallState.OFFERED, 0) + live.get(CallState.DIALING, 0)),
        "completed": int(ended.get(CallState.COMPLETED, 0)),
        "failed": int(ended.get(CallState.FAILED, 0)),
        "expired": int(ended.get(CallState.EXPIRED, 0)),
        "not_completed": [
            {
                "callback_id": call_id,
                "caller": caller,
                "state": state,
                "ended_at": ended_at.isoformat() if ended_at else None,
                "attempts": attempts,
            }
            for call_id, caller, state, ended_at, attempts in failed_rows
        ],
    }
