"""How long a queued caller is expected to wait (the formula is in docs/surge.md).

The shared interface of issue 16: the callbacks work owns this module; this is the
minimal version the surge monitor builds on (same names, same formula).

- serving agents n: agents of the queue's campaign with the queue's required skill
  at the required level or better (any agent when the queue requires no skill),
  logged in and not paused: available, reserved, on_call, wrap_up;
- free agents f: those of them ``available``;
- handle time h: mean talk + wrap-up seconds of the queue's calls answered in the
  last 30 minutes when there are at least 5, else ``DEFAULT_HANDLE_SECONDS``;
- position k (1 = next served): E(k) = 0 when k <= f; unknown when n == 0; else
  (k - f) * h / n. The queue's expected wait is E(waiting + 1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSkill, Call, Queue
from app.acd.states import AgentState, CallState

DEFAULT_HANDLE_SECONDS: float = 180.0
HANDLE_WINDOW = dt.timedelta(minutes=30)
MIN_HANDLED_CALLS = 5
SERVING_STATES = (
    AgentState.AVAILABLE,
    AgentState.RESERVED,
    AgentState.ON_CALL,
    AgentState.WRAP_UP,
)


def estimate_wait_seconds(
    position: int, free: int, serving: int, handle_seconds: float
) -> float | None:
    """E(k): 0 when a free agent takes it, None when nobody serves the queue."""
    if position <= free:
        return 0.0
    if serving == 0:
        return None
    return (position - free) * handle_seconds / serving


@dataclass(frozen=True)
class QueueLoad:
    queue_id: int
    waiting: int
    serving: int
    free: int
    handle_seconds: float
    expected_wait_seconds: float | None


async def queue_loads(
    session: AsyncSession, queue_ids: Sequence[int], now: dt.datetime
) -> dict[int, QueueLoad]:
    """Each queue's load, read with four statements whatever the number of queues."""
    if not queue_ids:
        return {}
    queues = list((await session.execute(select(Queue).where(Queue.id.in_(queue_ids)))).scalars())
    waiting_rows = await session.execute(
        select(Call.queue_id, func.count())
        .where(Call.queue_id.in_(queue_ids), Call.state == CallState.QUEUED)
        .group_by(Call.queue_id)
    )
    waiting = {int(q or 0): int(n) for q, n in waiting_rows.all()}
    handled_rows = await session.execute(
        select(Call.queue_id, Call.answered_at, Call.ended_at).where(
            Call.queue_id.in_(queue_ids),
            Call.answered_at >= now - HANDLE_WINDOW,
            Call.ended_at.is_not(None),
        )
    )
    handled: dict[int, list[float]] = {}
    for queue_id, answered_at, ended_at in handled_rows.all():
        if queue_id is None or answered_at is None or ended_at is None:
            continue  # excluded by the statement; kept apart for the type checker
        handled.setdefault(int(queue_id), []).append((ended_at - answered_at).total_seconds())
    campaigns = {q.campaign_id for q in queues}
    agent_rows = await session.execute(
        select(Agent.id, Agent.campaign_id, Agent.state, AgentSkill.skill, AgentSkill.level)
        .outerjoin(AgentSkill, AgentSkill.agent_id == Agent.id)
        .where(Agent.campaign_id.in_(campaigns), Agent.state.in_(SERVING_STATES))
    )
    agents: dict[int, tuple[int, str, dict[str, int]]] = {}
    for agent_id, campaign_id, state, skill, level in agent_rows.all():
        entry = agents.setdefault(agent_id, (campaign_id, state, {}))
        if skill is not None:
            entry[2][skill] = level
    loads = {}
    for queue in queues:
        serving = free = 0
        for campaign_id, state, skills in agents.values():
            if campaign_id != queue.campaign_id:
                continue
            if queue.required_skill and skills.get(queue.required_skill, 10**9) > (
                queue.required_level
            ):
                continue
            serving += 1
            free += state == AgentState.AVAILABLE
        times = handled.get(queue.id, [])
        handle = sum(times) / len(times) if len(times) >= MIN_HANDLED_CALLS else None
        handle_seconds = handle if handle is not None else DEFAULT_HANDLE_SECONDS
        n_waiting = waiting.get(queue.id, 0)
        loads[queue.id] = QueueLoad(
            queue_id=queue.id,
            waiting=n_waiting,
            serving=serving,
            free=free,
            handle_seconds=handle_seconds,
            expected_wait_seconds=estimate_wait_seconds(
                n_waiting + 1, free, serving, handle_seconds
            ),
        )
    return loads
