"""Background work of one process: due timers, claimed from the shared table."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from app.acd import callbacks, config_cache, hooks, lifecycle, repository, timers
from app.acd.models import Call, Timer
from app.acd.states import AgentState, CallState
from app.acd.timers import TimerKind
from app.background import BackgroundTask, FailedPasses
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
            queue = (await config_cache.snapshot(uow)).queue(call.queue_id)
            await lifecycle.overflow(uow, call, queue, now, reason="max_wait")
    elif timer.kind == TimerKind.SCREEN_GRACE and timer.agent_id:
        agent = await repository.get_agent(uow.session, timer.agent_id, lock=True)
        await lifecycle.screen_grace_over(uow, agent, now)
    elif timer.kind == TimerKind.TIER_WIDEN and call is not None:
        # More agents are eligible now: look again.
        lifecycle.request_dispatch(uow, call.campaign_id)
    elif timer.kind == TimerKind.RULE and call is not None:
        await hooks.timer_fired(uow, call, str(timer.data.get("name", "")), now)
    elif timer.kind == TimerKind.WAIT_ANNOUNCE and call is not None:
        await callbacks.wait_announce_due(uow, call, now)
    elif timer.kind == TimerKind.CALLBACK_RETRY and call is not None:
        await callbacks.retry_due(uow, call, now)
    elif timer.kind == TimerKind.CALLBACK_EXPIRY and call is not None:
        await callbacks.expiry_due(uow, call, now)
    elif timer.kind == TimerKind.CONSULT_FALLBACK and call is not None:
        await lifecycle.consult_fallback(uow, call, str(timer.data.get("timer") or ""), now)
    elif timer.kind == TimerKind.DIAL_TIMEOUT and call is not None:
        await callbacks.dial_unanswered(uow, call, now, reason="no_answer_from_platform")


BATCH = 100


async def fire_due_timers(db: Database) -> tuple[int, dt.datetime | None]:
    """Fire every timer due now, one transaction each: how many fired, and when the
    next one is due (None: no timer left).

    Rows are locked in the global order (the call, else the agent, then the timer)
    so a timer firing never deadlocks with a call step that cancels it.
    """
    fired = 0
    while True:
        async with db.read() as session:
            batch, next_due = await timers.due(session, utcnow(), BATCH)
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
            return fired, next_due


async def _fire(uow: UnitOfWork, timer: Timer) -> None:
    outbox_before = uow.mark()
    try:
        async with uow.session.begin_nested():
            await _on_timer(uow, timer)
    except Exception:
        # A broken timer is dropped (and logged), never retried forever; the
        # savepoint undid its writes, so its staged events and rows go too.
        uow.rollback_to(outbox_before)
        log.exception("timer %s (%s) failed", timer.id, timer.kind)


class TimerWorker(BackgroundTask):
    """Fires due timers, sleeping until the next one is due.

    A timer set in this process wakes it at once if it is due sooner than the
    planned wake-up; one set by another process is fired by that process, and
    found here too at the latest after ``poll_seconds`` (the safety net for a
    process that died with timers pending).
    """

    def __init__(self) -> None:
        super().__init__()
        self._wake = asyncio.Event()
        self._planned: dt.datetime | None = None

    def start(self, db: Database, poll_seconds: float) -> None:
        db.on_timer_set.append(self._timer_set)
        self._launch(lambda: self._run(db, poll_seconds), name="timers")

    def _timer_set(self, due_at: dt.datetime) -> None:
        if self._planned is None or due_at < self._planned:
            self._wake.set()

    async def _run(self, db: Database, poll_seconds: float) -> None:
        failures = FailedPasses("timer pass")
        while True:
            self._wake.clear()  # before the pass: a timer set during it wakes the next wait
            next_due: dt.datetime | None = None
            wait = poll_seconds
            try:
                _fired, next_due = await fire_due_timers(db)
                failures.succeeded()
            except Exception:
                wait = max(wait, failures.failed())
            now = utcnow()
            if next_due is not None:
                wait = min(wait, max(0.0, (next_due - now).total_seconds()))
            self._planned = now + dt.timedelta(seconds=wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
