"""The router: matches waiting calls to free agents.

A match is claimed in one transaction that locks the call and then the agent. On
PostgreSQL both locks use ``FOR UPDATE SKIP LOCKED``, so several processes route at
once and never wait on, or double-book, each other's rows; on SQLite the single
writer serialises claims. The state checks in the transitions are the last guard:
a call that is no longer ``queued`` or an agent no longer ``available`` is never
matched.

Each process runs one ``Dispatcher``: requests for a campaign (after a call is
queued or an agent frees up) are coalesced, and a periodic sweep catches anything
another process left, so no caller waits while a seat is free.

A call the pass finds held by another transaction is looked at again, in the next
pass, while it is still waiting. Its holder may be another router that could not
see an agent freed meanwhile, and that agent's own step, finding the call held
(it takes only the head of the queue, ``matching.best_call_for``), left the
agent available and asked for this pass: without a second look both would miss
each other until the sweep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
from dataclasses import dataclass

from sqlalchemy import select

from app.acd import config_cache, hooks, lifecycle, matching
from app.acd.models import Call
from app.acd.states import CallState
from app.background import BackgroundTask, FailedPasses
from app.db import Database, UnitOfWork, utcnow

log = logging.getLogger(__name__)

# How many waiting calls one pass looks at; the pass repeats while it makes offers.
PASS_SIZE = 50


class Outcome(enum.Enum):
    """What ``try_offer`` did with a waiting call."""

    OFFERED = "offered"
    NO_AGENT = "no_agent"  # no free agent fits (or one would overtake an earlier call)
    GONE = "gone"  # no longer waiting: taken, moved or ended by someone else
    HELD = "held"  # still waiting, but another transaction holds its row (PostgreSQL)


async def try_offer(uow: UnitOfWork, call_id: int, now: dt.datetime) -> Outcome:
    """Offer one waiting call to the best eligible free agent."""
    stmt = (
        select(Call)
        .where(Call.id == call_id, Call.state == CallState.QUEUED)
        .with_for_update(skip_locked=True)
    )
    result = await uow.session.execute(stmt, execution_options={"populate_existing": True})
    call = result.scalar_one_or_none()
    if call is None:
        if uow.db.is_postgres and await _still_waiting(uow, call_id):
            return Outcome.HELD  # SKIP LOCKED passed it over
        return Outcome.GONE
    if call.queue_id is None:
        return Outcome.GONE
    config = await config_cache.snapshot(uow)
    queue = config.queues.get(call.queue_id)
    if queue is None:
        return Outcome.GONE
    waited = (now - (call.queued_at or call.received_at)).total_seconds()
    # Not past an earlier call of the queue that another transaction holds right now
    # (SKIP LOCKED passed it over): that call goes first, once its holder commits.
    level = matching.eligible_level(queue, waited)
    site = matching.preferred_site(queue, waited)
    agent = await matching.best_agent(uow.session, queue, level, call=call, site_id=site)
    if agent is None:
        return Outcome.NO_AGENT
    await lifecycle.offer_pair(uow, call, agent, queue, now, config=config)
    return Outcome.OFFERED


async def _still_waiting(uow: UnitOfWork, call_id: int) -> bool:
    """The call's committed state is ``queued`` (read without a lock: only when the
    locked read found nothing, so not on the path of a match)."""
    stmt = select(Call.state).where(Call.id == call_id)
    return (await uow.session.execute(stmt)).scalar_one_or_none() == CallState.QUEUED


@dataclass
class _Candidate:
    call_id: int
    queue_id: int
    campaign_id: int


async def _waiting_calls(db: Database, campaign_id: int | None) -> list[_Candidate]:
    async with db.read() as session:
        stmt = select(Call.id, Call.queue_id, Call.campaign_id).where(
            Call.state == CallState.QUEUED, Call.queue_id.is_not(None)
        )
        if campaign_id is not None:
            stmt = stmt.where(Call.campaign_id == campaign_id)
        stmt = stmt.order_by(Call.rank_key, Call.id).limit(PASS_SIZE)
        return [_Candidate(c, q or 0, k) for c, q, k in (await session.execute(stmt)).all()]


async def dispatch(db: Database, campaign_id: int | None = None) -> int:
    """Make every offer possible now; returns how many were made."""
    made, _held = await dispatch_pass(db, campaign_id)
    return made


async def dispatch_pass(db: Database, campaign_id: int | None = None) -> tuple[int, set[int]]:
    """Make every offer possible now: how many were made, and the campaigns of the
    waiting calls found held by another transaction (to look at again)."""
    made = 0
    held: set[int] = set()
    while True:
        candidates = await _waiting_calls(db, campaign_id)
        made_this_pass = 0
        stuck_queues: set[int] = set()
        for candidate in candidates:
            # Calls of one queue share its skill: if its head found nobody, the rest won't.
            if candidate.queue_id in stuck_queues:
                continue
            async with db.unit_of_work() as uow:
                outcome = await try_offer(uow, candidate.call_id, utcnow())
            if outcome is Outcome.OFFERED:
                made_this_pass += 1
            elif outcome is Outcome.NO_AGENT:
                stuck_queues.add(candidate.queue_id)
            elif outcome is Outcome.HELD:
                held.add(candidate.campaign_id)
        made += made_this_pass
        if not made_this_pass or (len(candidates) < PASS_SIZE and not stuck_queues):
            return made, held


# Passes of one process start at least this far apart: requests in between gather
# into the next pass. Most matches are made in the steps' own transactions; a pass
# is for what they could not see, so a few milliseconds more are not felt, while
# one pass per call at a high call rate would be.
MIN_PASS_INTERVAL = 0.02


class Dispatcher(BackgroundTask):
    """Coalesces dispatch requests in this process and runs them one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._db: Database | None = None
        self._pending: set[int | None] = set()
        self._wakeup = asyncio.Event()

    def request(self, campaign_id: int | None) -> None:
        if self._db is None:
            return
        self._pending.add(campaign_id)
        self._wakeup.set()

    def start(self, db: Database, sweep_seconds: float) -> None:
        self._db = db
        hooks.of(db).dispatcher = self
        self._launch(lambda: self._run(sweep_seconds), name="dispatcher")

    async def stop(self) -> None:
        if self._db is not None:
            hooks.of(self._db).dispatcher = None
        self._db = None
        await super().stop()

    async def _run(self, sweep_seconds: float) -> None:
        assert self._db is not None
        failures = FailedPasses("dispatch pass")
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=sweep_seconds)
            except TimeoutError:
                self._pending.add(None)  # the sweep: every campaign
            self._wakeup.clear()
            pending, self._pending = self._pending, set()
            targets: list[int | None] = [None] if None in pending else list(pending)
            started = asyncio.get_running_loop().time()
            for campaign_id in targets:
                try:
                    _made, held = await dispatch_pass(self._db, campaign_id)
                    failures.succeeded()
                    # Held calls: the next pass (at least MIN_PASS_INTERVAL on) looks
                    # again, until each is offered or gone.
                    for held_campaign in held:
                        self.request(held_campaign)
                except Exception:  # a failed pass must not stop routing
                    await asyncio.sleep(failures.failed())
            spent = asyncio.get_running_loop().time() - started
            if spent < MIN_PASS_INTERVAL:
                await asyncio.sleep(MIN_PASS_INTERVAL - spent)
