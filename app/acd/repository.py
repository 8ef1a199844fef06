"""Reading and locking ACD rows.

Writers lock rows in one order, call before agent, so two transactions touching the
same pair (caller and volunteer hanging up at once) wait instead of deadlocking.
``FOR UPDATE`` is rendered on PostgreSQL only; SQLite has one writer at a time.
"""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSkill, Call, Campaign, Queue
from app.acd.states import CALL_LIVE_STATES, CallState
from app.errors import NotFound


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(
            "campaign {campaign_id} not found", field="campaign_id", campaign_id=campaign_id
        )
    return campaign


async def get_queue(session: AsyncSession, queue_id: int) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("queue {queue_id} not found", field="queue_id", queue_id=queue_id)
    return queue


async def get_agent(session: AsyncSession, agent_id: int, *, lock: bool = False) -> Agent:
    stmt = select(Agent).where(Agent.id == agent_id)
    if lock:
        # populate_existing: a row read earlier in this transaction is re-read under the lock.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    agent = (await session.execute(stmt)).scalar_one_or_none()
    if agent is None:
        raise NotFound("agent {agent_id} not found", field="agent_id", agent_id=agent_id)
    return agent


async def lock_call(session: AsyncSession, call_id: int) -> Call:
    stmt = (
        select(Call)
        .where(Call.id == call_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    call = (await session.execute(stmt)).scalar_one_or_none()
    if call is None:
        raise NotFound("call {call_id} not found", field="call_id", call_id=call_id)
    return call


async def live_call_by_provider_id(session: AsyncSession, provider_call_id: str) -> Call | None:
    """The current leg of a provider's call, locked (a transfer adds legs): the
    latest live one, else the latest (a consult leg withdrawn leaves the first leg
    live under a later, ended one)."""
    live = case((Call.state.in_(sorted(CALL_LIVE_STATES)), 0), else_=1)
    stmt = (
        select(Call)
        .where(Call.provider_call_id == provider_call_id)
        .order_by(live, Call.leg.desc())
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def queue_length(session: AsyncSession, queue_id: int) -> int:
    stmt = select(func.count()).where(Call.queue_id == queue_id, Call.state == CallState.QUEUED)
    return int((await session.execute(stmt)).scalar_one())


async def agent_skills(session: AsyncSession, agent_id: int) -> dict[str, int]:
    stmt = select(AgentSkill.skill, AgentSkill.level).where(AgentSkill.agent_id == agent_id)
    return {skill: level for skill, level in (await session.execute(stmt)).all()}
