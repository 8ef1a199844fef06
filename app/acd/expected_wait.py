"""The expected wait of a queued call and of a queue (the formula in docs/surge.md).

- serving agents n: the queue's campaign's agents that have its required skill at
  its required level or better (any agent when it requires none), logged in and
  not paused: available, reserved, on_call, wrap_up;
- free agents f: those of them available;
- handle time h: the mean talk + wrap-up seconds of the queue's calls answered in
  the last 30 minutes and finished, when there are at least 5; else
  ``DEFAULT_HANDLE_SECONDS``;
- position k: 1 is the next to be served, in the router's order (rank, then id),
  callbacks holding their places among the calls;
- E(k) = 0 when k <= f; unknown (None) when n == 0; else (k - f) * h / n.

The queue's expected wait is E(waiting + 1): what a caller arriving now would wait.
Each of n serving agents frees up every h seconds on average, so the k-th caller
waits for k - f of those frees, which come n times as fast as one agent's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSkill, Call, Queue
from app.acd.states import AgentState, CallState

DEFAULT_HANDLE_SECONDS: float = 180.0
# The handle time is measured over this window, from at least this many calls.
HANDLE_WINDOW = dt.timedelta(minutes=30)
HANDLE_MIN_CALLS = 5
SERVING_STATES = (
    AgentState.AVAILABLE,
    AgentState.RESERVED,
    AgentState.ON_CALL,
    AgentState.CONSULTING,
    AgentState.WRAP_UP,
)


def estimate_wait_seconds(
    position: int, free: int, serving: int, handle_seconds: float
) -> float | None:
    """E(k): seconds the caller at ``position`` (1 = next) is expected to wait."""
    if position <= free:
        return 0.0
    if serving <= 0:
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

    def wait_at(self, position: int) -> float | None:
        """E(position) with this queue's figures."""
        return estimate_wait_seconds(position, self.free, self.serving, self.handle_seconds)


async def _agents(session: AsyncSession, queue: Queue) -> tuple[int, int]:
    """(serving, free) for one queue."""
    stmt = select(Agent.state, func.count()).where(
        Agent.campaign_id == queue.campaign_id, Agent.state.in_(SERVING_STATES)
    )
    if queue.required_skill:
        stmt = stmt.join(
            AgentSkill,
            and_(
                AgentSkill.agent_id == Agent.id,
                AgentSkill.skill == queue.required_skill,
                AgentSkill.level <= queue.required_level,
            ),
        )
    counts = dict((await session.execute(stmt.group_by(Agent.state))).all())
    return int(sum(counts.values())), int(counts.get(AgentState.AVAILABLE, 0))


async def _handle_times(
    session: AsyncSession, queue_ids: Sequence[int], now: dt.datetime
) -> dict[int, float]:
    stmt = select(Call.queue_id, Call.answered_at, Call.ended_at).where(
        Call.queue_id.in_(queue_ids),
        Call.state == CallState.COMPLETED,
        Call.answered_at >= now - HANDLE_WINDOW,
        Call.hangup_at.is_not(None),
        Call.ended_at.is_not(None),
    )
    spent: dict[int, list[float]] = {}
    for queue_id, answered, ended in (await session.execute(stmt)).all():
        if queue_id is None or answered is None or ended is None:
            continue
        seconds = max(0.0, (ended - answered).total_seconds())  # talk + wrap-up
        spent.setdefault(queue_id, []).append(seconds)
    return {
        queue_id: sum(times) / len(times)
        for queue_id, times in spent.items()
        if len(times) >= HANDLE_MIN_CALLS
    }


async def queue_loads(
    session: AsyncSession, queue_ids: Sequence[int], now: dt.datetime
) -> dict[int, QueueLoad]:
    """Each queue's figures and expected wait (queues that do not exist are left out)."""
    ids = sorted(set(queue_ids))
    if not ids:
        return {}
    queues = (await session.execute(select(Queue).where(Queue.id.in_(ids)))).scalars().all()
    waiting_stmt = (
        select(Call.queue_id, func.count())
        .where(Call.queue_id.in_(ids), Call.state == CallState.QUEUED)
        .group_by(Call.queue_id)
    )
    waiting = dict((await session.execute(waiting_stmt)).all())
    handle = await _handle_times(session, ids, now)
    loads: dict[int, QueueLoad] = {}
    for queue in queues:
        serving, free = await _agents(session, queue)
        h = handle.get(queue.id, DEFAULT_HANDLE_SECONDS)
        n_waiting = int(waiting.get(queue.id, 0))
        loads[queue.id] = QueueLoad(
            queue_id=queue.id,
            waiting=n_waiting,
            serving=serving,
            free=free,
            handle_seconds=h,
            expected_wait_seconds=estimate_wait_seconds(n_waiting + 1, free, serving, h),
        )
    return loads


async def position_of(session: AsyncSession, call: Call) -> int:
    """A queued call's place in its queue (1 = next), in the router's order."""
    ahead = select(func.count()).where(
        Call.queue_id == call.queue_id,
        Call.state == CallState.QUEUED,
        Call.id != call.id,
        or_(
            Call.rank_key < call.rank_key,
            and_(Call.rank_key == call.rank_key, Call.id < call.id),
        ),
    )
    return int((await session.execute(ahead)).scalar_one()) + 1


async def call_wait(session: AsyncSession, call: Call, now: dt.datetime) -> float | None:
    """The expected wait of one queued call (None: unknown, nobody serving)."""
    if call.queue_id is None:
        return None
    loads = await queue_loads(session, [call.queue_id], now)
    load = loads.get(call.queue_id)
    if load is None:
        return None
    return load.wait_at(await position_of(session, call))


async def queued_positions(
    session: AsyncSession, queue_ids: Sequence[int]
) -> dict[int, list[tuple[int, str]]]:
    """Each queue's waiting calls in the router's order: [(call id, kind), ...]."""
    if not queue_ids:
        return {}
    stmt = (
        select(Call.queue_id, Call.id, Call.kind)
        .where(Call.queue_id.in_(list(queue_ids)), Call.state == CallState.QUEUED)
        .order_by(Call.queue_id, Call.rank_key, Call.id)
    )
    order: dict[int, list[tuple[int, str]]] = {}
    for queue_id, call_id, kind in (await session.execute(stmt)).all():
        if queue_id is not None:
            order.setdefault(queue_id, []).append((call_id, kind))
    return order


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
