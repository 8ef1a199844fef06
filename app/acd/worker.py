"""Background work of one process: due timers, claimed from the shared table."""

from __future__ import annotations

import asyncio
import logging

from app.acd import lifecycle, repository, timers
from app.acd.models import Call, Timer
from app.acd.states import AgentState, CallState
from app.acd.timers import TimerKind
from app.background import BackgroundTask
from app.db import Database, UnitOfWork, utcnow

log = logging.getLogger(__name__)


async def _on_timer(uow: UnitOfWork, timer: Timer) -> None:
    now = utcnow()
    call: Call | None = None
    if timer.call_id is not None:
        call = await repository.lock_call(uow.session, timer.call_id)
    if timer.kind == TimerKind.RING_TIMEOUT and call is not None and timer.agent_id:
        agent = await repository.get_agent(uow.session, timer.agent_id, lock=True)
        await lifecycle.ring_timeout(uow, call, agent, now)
    elif timer.kind == TimerKind.WRAPUP_END and timer.agent_id:
        agent = await repository.get_agent(uow.session, timer.agent_id, lock=True)
        if (
            call is not None
            and call.state == CallState.WRAP_UP
            and (agent.state == AgentState.WRAP_UP and agent.current_call_id == call.id)
        ):
            await lifecycle.end_wrap_up(uow, call, agent, now, disposition=None)
    elif timer.kind == TimerKind.MAX_WAIT and call is not None:
        if call.state == CallState.QUEUED and call.queue_id is not None:
            queue = await repository.get_queue(uow.session, call.queue_id)
            await lifecycle.overflow(uow, call, queue, now, reason="max_wait")
    elif timer.kind == TimerKind.SCREEN_GRACE and timer.agent_id:
        agent = await repository.get_agent(uow.session, timer.agent_id, lock=True)
        await lifecycle.screen_grace_over(uow, agent, now)
    elif timer.kind == TimerKind.TIER_WIDEN and call is not None:
        # More agents are eligible now: look again.
        lifecycle.request_dispatch(uow, call.campaign_id)
    elif timer.kind == TimerKind.RULE and call is not None:
        from app.rules import service as rules

        await rules.timer_fired(uow, call, str(timer.data.get("name", "")), now)


BATCH = 100


async def run_due_timers(db: Database) -> int:
    """Fire every timer due now, one transaction each; returns how many fired.

    Rows are locked in the global order (the call, else the agent, then the timer)
    so a timer firing never deadlocks with a call step that cancels it.
    """
    fired = 0
    while True:
        async with db.read() as session:
            batch = await timers.due(session, utcnow(), BATCH)
        for timer_id, call_id, agent_id in batch:
            async with db.unit_of_work() as uow:
                if call_id is not None:
                    await repository.lock_call(uow.session, call_id)
                elif agent_id is not None:
                    await repository.get_agent(uow.session, agent_id, lock=True)
                timer = await timers.claim(uow, timer_id)
                if timer is not None:
                    await _fire(uow, timer)
                    fired += 1
        if len(batch) < BATCH:
            return fired


async def _fire(uow: UnitOfWork, timer: Timer) -> None:
    events_before = len(uow.events)
    try:
        async with uow.session.begin_nested():
            await _on_timer(uow, timer)
    except Exception:
        # A broken timer is dropped (and logged), never retried forever; the
        # savepoint undid its writes, so its events must not be published.
        del uow.events[events_before:]
        log.exception("timer %s (%s) failed", timer.id, timer.kind)


class TimerWorker(BackgroundTask):
    def start(self, db: Database, poll_seconds: float) -> None:
        self._launch(self._run(db, poll_seconds), name="timers")

    async def _run(self, db: Database, poll_seconds: float) -> None:
        while True:
            try:
                await run_due_timers(db)
            except Exception:
                log.exception("timer pass failed")
            await asyncio.sleep(poll_seconds)
