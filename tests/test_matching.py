"""app/acd/matching.py: the best agent read level by level (SQLite's statement) is the
agent the one ordered statement picks (lowest level first, then the queue's
strategy), whatever the levels, idle times, calls taken, screens and training;
compared on both databases, over seeded random rosters."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

from app.acd.matching import MAX_LEVEL, BestAgentShape, Strategy, build_agent_statement
from app.acd.models import Agent, AgentSkill, Queue
from app.acd.states import AgentState
from tests.conftest import Hotline, setup_campaign

AGENTS = 12
ROUNDS = 15


async def _shuffle(hotline: Hotline, rng: random.Random, agent_ids: list[int], queue: int) -> None:
    """A new random roster: who is free, since when, their calls, screens, levels."""
    start = dt.datetime(2026, 12, 5, 20, 0, tzinfo=dt.UTC)
    async with hotline.db.unit_of_work() as uow:
        for agent_id in agent_ids:
            seen = rng.random() < 0.3
            await uow.session.execute(
                update(Agent)
                .where(Agent.id == agent_id)
                .values(
                    state=AgentState.AVAILABLE if rng.random() < 0.7 else AgentState.PAUSED,
                    # Ties on purpose: the last tie-break (the id) is compared too.
                    state_since=start + dt.timedelta(seconds=rng.randint(0, 5)),
                    calls_taken=rng.randint(0, 3),
                    screen_seen_at=start if seen else None,
                    screens_open=rng.randint(0, 1) if seen else 0,
                    trained=rng.random() < 0.5,
                )
            )
            await uow.session.execute(
                update(AgentSkill)
                .where(AgentSkill.agent_id == agent_id)
                .values(level=rng.choice((1, 1, 2, 3, 4, MAX_LEVEL)))
            )
        last = rng.choice([None, *agent_ids])
        await uow.session.execute(
            update(Queue).where(Queue.id == queue).values(rr_last_agent_id=last)
        )


@pytest.mark.parametrize("strategy", Strategy.ALL)
async def test_level_by_level_picks_the_agent_the_ordered_statement_picks(
    hotline_factory: Callable[..., Awaitable[Hotline]], strategy: str
) -> None:
    hotline = await hotline_factory(background_workers=False)
    setup = await setup_campaign(hotline, agents=AGENTS, queue={"strategy": strategy})
    agent_ids, queue_id = setup["agent_ids"], setup["queue_id"]
    rng = random.Random(f"matching-{strategy}")
    compared = found = 0
    for _ in range(ROUNDS):
        await _shuffle(hotline, rng, agent_ids, queue_id)
        for trained_only in (False, True):
            for max_level in (1, 2, 3, MAX_LEVEL):
                params: dict[str, Any] = {
                    "p_campaign": setup["campaign_id"],
                    "p_queue": queue_id,
                    "p_skill": "pledges",
                }
                shape = BestAgentShape(strategy, True, False, False, trained_only, 0)
                ordered = build_agent_statement(shape)
                by_level = build_agent_statement(shape._replace(levels=max_level))
                async with hotline.db.unit_of_work() as uow:
                    one = await uow.session.execute(ordered, {**params, "p_level": max_level})
                    other = await uow.session.execute(by_level, params)
                    expected = one.scalar_one_or_none()
                    got = other.scalar_one_or_none()
                assert (got and got.id) == (expected and expected.id), (max_level, trained_only)
                compared += 1
                found += expected is not None
    # The rosters made both answers: an agent found, and none.
    assert compared == ROUNDS * 2 * 4 and 0 < found < compared
