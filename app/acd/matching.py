"""Finding the other half of a match: the best free agent for a call, or the best
waiting call for an agent. Each is one statement that also locks the row it finds.

On PostgreSQL the row is locked ``FOR UPDATE SKIP LOCKED``: a row another
transaction holds is passed over, not waited for, so matches are made side by side
in several processes without double booking. On SQLite ``FOR UPDATE`` is not
rendered: the single writer serialises matches.

Passing over a held row must not break queue order. A call takes an agent only
if no earlier call of its queue waits (``best_agent`` given the call). An agent
takes only the head of what it may take (``best_call_for`` on PostgreSQL): if
another transaction holds the head (the router looking at it, a caller hanging
up, a screen pop being stored), the agent takes nothing, stays available and
asks the router to look again after commit; the router, which retries a call it
found locked (``router.try_offer``), pairs them once the holder is done.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.acd.config_cache import ConfigSnapshot
from app.acd.models import Agent, AgentSkill, Call, Queue
from app.acd.states import AgentState, CallState
from app.db import UTCDateTime, built_once

# Skill levels run from 1 (the queue's first tier) to this (app/acd/schemas.py).
MAX_LEVEL = 10


class Strategy:
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    ALL = (LONGEST_IDLE, ROUND_ROBIN, FEWEST_CALLS)


def eligible_level(queue: Queue, waited_seconds: float) -> int:
    """The worst skill level allowed for a call that has waited this long (tiers widen)."""
    level = queue.required_level
    for after_seconds, tier_level in queue.tiers or []:
        if waited_seconds >= after_seconds:
            level = max(level, tier_level)
    return level


def preferred_site(queue: Queue, waited_seconds: float) -> int | None:
    """The site a call is kept to: the queue's own, until it has waited the queue's
    ``site_widen_seconds`` (None: any site). Like the tiers, a timer wakes it then."""
    if queue.site_id is None or waited_seconds >= queue.site_widen_seconds:
        return None
    return queue.site_id


class BestAgentShape(NamedTuple):
    """A kind of best-agent statement (one is built and kept per shape).

    ``levels``: the worst skill level taken when it is in the statement (1, or
    several read level by level on SQLite), 0 when it is a parameter."""

    strategy: str
    with_skill: bool
    after_earlier: bool
    with_site: bool
    trained_only: bool
    levels: int


def _agent_statement(shape: BestAgentShape) -> Any:
    """The best-agent statement of ``shape`` (bound per call)."""
    return built_once(("best agent", *shape), lambda: build_agent_statement(shape))


def build_agent_statement(shape: BestAgentShape) -> Any:
    """The best-agent statement of ``shape``, built (``_agent_statement`` keeps it)."""
    strategy, with_skill, after_earlier, with_site, trained_only, levels = shape
    stmt = select(Agent).where(
        Agent.campaign_id == bindparam("p_campaign"),
        Agent.state == AgentState.AVAILABLE,
        # Never offer to a volunteer whose screen is gone (they could not see it).
        or_(Agent.screen_seen_at.is_(None), Agent.screens_open > 0),
    )
    if with_site:
        stmt = stmt.where(Agent.site_id == bindparam("p_site"))
    if trained_only:
        stmt = stmt.where(Agent.trained.is_(True))
    if after_earlier:
        call_id: Any = bindparam("p_call")
        rank: Any = bindparam("p_rank")
        earlier = (
            select(Call.id)
            .where(
                Call.queue_id == bindparam("p_queue"),
                Call.state == CallState.QUEUED,
                Call.id != call_id,
                or_(Call.rank_key < rank, and_(Call.rank_key == rank, Call.id < call_id)),
            )
            .limit(1)
        )
        stmt = stmt.where(~exists(earlier))
    order = _strategy_order(strategy)
    if with_skill:
        # The agent's level in the skill, looked up by primary key for each free agent,
        # not a join: a join's plan depends on the statistics, and a roster just loaded
        # (not analysed yet) made PostgreSQL loop over every agent for every skill row
        # (8 ms an offer for 130 volunteers, growing with their square).
        level = (
            select(AgentSkill.level)
            .where(AgentSkill.agent_id == Agent.id, AgentSkill.skill == bindparam("p_skill"))
            .scalar_subquery()
        )
        if levels == 1:
            # One level eligible: the strategy's order alone (an ordered walk of the
            # agents' index on both databases, where ordering by a level that is the
            # same for all read and sorted every free agent: 8 ms on PostgreSQL,
            # 3 ms on SQLite, with 1,000 free volunteers).
            stmt = stmt.where(level <= 1)
        elif levels > 1:
            return _by_level(stmt, level, order, levels)
        else:
            stmt = stmt.where(level <= bindparam("p_level"))
            order = [level, *order]  # lowest tier first
    return stmt.order_by(*order).limit(1).with_for_update(skip_locked=True, of=Agent)


def _strategy_order(strategy: str) -> list[Any]:
    """The order free agents are taken in, within one skill level."""
    if strategy == Strategy.ROUND_ROBIN:
        # Read from the row, not the cached queue: it moves with every offer.
        last = (
            select(Queue.rr_last_agent_id).where(Queue.id == bindparam("p_queue")).scalar_subquery()
        )
        return [case((Agent.id > func.coalesce(last, 0), 0), else_=1), Agent.id]
    if strategy == Strategy.FEWEST_CALLS:
        return [Agent.calls_taken, Agent.state_since, Agent.id]
    return [Agent.state_since, Agent.id]


def _by_level(free: Any, level: Any, order: list[Any], levels: int) -> Any:
    """SQLite: the best agent of the lowest level that has one, one level at a time.

    Ordering every free agent by its level (a look-up each) and then by the strategy
    made SQLite read the level of all of them and sort them all, 3 ms an offer with
    1,000 free volunteers. Level by level, each level's first agent in the strategy's
    order is an ordered walk of the agents' index that stops at the first one of
    that level: the same agent, as the strategy's order is kept within a level."""
    firsts = [
        free.with_only_columns(Agent.id.label("id"), literal_column(str(n)).label("lvl"))
        # The first level takes any below it too (none: levels start at 1).
        .where((level <= 1) if n == 1 else (level == literal_column(str(n))))
        .order_by(*order)
        .limit(1)
        .correlate(None)
        .subquery(f"level_{n}")
        .select()
        for n in range(1, levels + 1)
    ]
    picked = union_all(*firsts).subquery("picked")
    best = select(picked.c.id).order_by(picked.c.lvl).limit(1).scalar_subquery()
    return select(Agent).where(Agent.id == best)


async def best_agent(
    session: AsyncSession,
    queue: Queue,
    max_level: int,
    *,
    call: Call | None = None,
    site_id: int | None = None,
) -> Agent | None:
    """The best free agent for a call of ``queue``, locked; None if there is none.

    Given ``call`` (a call that has just joined the queue, or the router's), an agent
    is taken only if no earlier call of the same queue is waiting: a call never
    overtakes one ahead of it. Given ``site_id`` (``preferred_site``), only that
    site's volunteers. A ``trained_only`` queue: only trained volunteers.
    """
    levels = max(1, min(max_level, MAX_LEVEL)) if queue.required_skill else 0
    if levels > 1 and session.get_bind().dialect.name != "sqlite":
        # PostgreSQL keeps one ordered statement for several levels: read level by
        # level, it would lock an agent of each level it reads (FOR UPDATE).
        levels = 0
    stmt = _agent_statement(
        BestAgentShape(
            queue.strategy,
            bool(queue.required_skill),
            call is not None,
            site_id is not None,
            queue.trained_only,
            levels,
        )
    )
    params: dict[str, Any] = {"p_campaign": queue.campaign_id, "p_queue": queue.id}
    if site_id is not None:
        params["p_site"] = site_id
    if queue.required_skill:
        params["p_skill"] = queue.required_skill
        if not levels:
            params["p_level"] = max_level
    if call is not None:
        params["p_call"], params["p_rank"] = call.id, call.rank_key
    result = await session.execute(stmt, params, execution_options={"populate_existing": True})
    return result.scalar_one_or_none()


async def best_call_for(
    session: AsyncSession,
    agent: Agent,
    config: ConfigSnapshot,
    now: dt.datetime,
    *,
    head_only: bool = False,
) -> Call | None:
    """The first waiting call, in queue order, that ``agent`` may take; locked.

    Queues the agent's skill fits at once, and queues whose tiers reach the agent's
    level (or that prefer another site) for calls that have waited long enough.

    ``head_only`` (PostgreSQL): the first such call or none. When another
    transaction holds it, ``SKIP LOCKED`` would pass it over and hand the agent the
    second call, out of order; instead nothing is returned and the caller leaves
    the agent available for the router. Still one statement: the head is chosen by
    an unlocked sub-select, then locked (and its state checked again) by id.
    """
    eligible = config.eligible_queues(
        agent.campaign_id, agent.id, agent.site_id, trained=agent.trained
    )
    if not eligible:
        return None
    at_once = [queue.id for queue, wait_needed in eligible if wait_needed <= 0]
    after_wait = [(queue.id, wait_needed) for queue, wait_needed in eligible if wait_needed > 0]
    params: dict[str, Any] = {"p_campaign": agent.campaign_id, "p_at_once": at_once}
    for i, (queue_id, wait_needed) in enumerate(after_wait):
        params[f"p_queue_{i}"] = queue_id
        params[f"p_cutoff_{i}"] = now - dt.timedelta(seconds=wait_needed)
    stmt = _call_statement(len(after_wait), head_only)
    result = await session.execute(stmt, params, execution_options={"populate_existing": True})
    return result.scalar_one_or_none()


def _waiting_for_agent(call: Any, delayed_queues: int) -> list[Any]:
    """A queued call of the campaign in a queue the agent may take at once
    (``p_at_once``), or in a delayed queue (``p_queue_i``) queued before its cutoff."""
    fits: list[Any] = [call.queue_id.in_(bindparam("p_at_once", expanding=True))]
    for i in range(delayed_queues):
        cutoff = bindparam(f"p_cutoff_{i}", type_=UTCDateTime())
        fits.append(and_(call.queue_id == bindparam(f"p_queue_{i}"), call.queued_at <= cutoff))
    return [
        call.campaign_id == bindparam("p_campaign"),
        call.state == CallState.QUEUED,
        or_(*fits),
    ]


def _call_statement(delayed_queues: int, head_only: bool) -> Any:
    """The best-call statement for a number of delayed queues (bound per agent)."""
    return built_once(
        ("best call", delayed_queues, head_only),
        lambda: _build_call_statement(delayed_queues, head_only),
    )


def _build_call_statement(delayed_queues: int, head_only: bool) -> Any:
    if head_only:
        peek = aliased(Call)  # not correlated with the locked ``calls`` below
        head = (
            select(peek.id)
            .where(*_waiting_for_agent(peek, delayed_queues))
            .order_by(peek.rank_key, peek.id)
            .limit(1)
            .scalar_subquery()
        )
        # The conditions are checked again on the locked row: a head offered and
        # committed since the sub-select read it is not returned (nor anything else).
        return (
            select(Call)
            .where(Call.id == head, *_waiting_for_agent(Call, delayed_queues))
            .with_for_update(skip_locked=True)
        )
    return (
        select(Call)
        .where(*_waiting_for_agent(Call, delayed_queues))
        .order_by(Call.rank_key, Call.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
