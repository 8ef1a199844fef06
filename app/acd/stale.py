"""The safety net for lost hang-ups, whatever the platform.

A hang-up the platform never delivers (a webhook dropped for good, a platform that
restarted) would leave a call ``connected`` and its volunteer ``on_call`` for ever:
the line loses a seat without anyone noticing. Every ``PLEDGELINE_STALE_SWEEP_SECONDS``
each process looks for:

- calls connected longer than their campaign's ``stale_alert_seconds`` (30 min by
  default): supervisors get one ``supervisor.alert`` (reason ``stale_call``), marked
  on the call (``stale_alerted_at``) so it is raised once whichever process sees it;
- calls connected longer than ``stale_end_seconds`` (2 h): the call is ended with
  reason ``stale`` and the platform told to hang up (a ``hangup`` command, in case
  the line is up after all); the volunteer goes to wrap-up as after any hang-up,
  and supervisors are told (reason ``stale_call_ended``). The port has no way to
  ask a platform for a call's state (the HTTP callback contract has none), so the
  limit itself is the answer;
- volunteers ``reserved`` or ``on_call`` for at least ``STRANDED_AFTER`` whose
  current call is not the live call that state needs (an offered call for
  ``reserved``, a connected one for ``on_call``): freed as the end of a call frees
  them (available, or the pause or logout they asked for), reason ``stranded``.

Candidates are read without locks; each is then handled in a transaction of its
own that locks the call, then the agent (the global lock order), and checks again
under the locks, so a hang-up arriving meanwhile wins and several processes
sweeping at once act once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from app.acd import config_cache, lifecycle, repository, timers
from app.acd.models import Agent, Call
from app.acd.states import AgentState, CallState, next_call_state
from app.background import BackgroundTask
from app.db import Database, UnitOfWork, utcnow
from app.outbox import CommandName, emit
from app.outbox import issue as issue_command

log = logging.getLogger(__name__)

# A volunteer reserved or on a call this long with no such live call is stranded. The
# state and the call change in one transaction, so this is a margin, not a race guard.
STRANDED_AFTER = dt.timedelta(seconds=60)


@dataclass
class SweepResult:
    alerted: int = 0
    ended: int = 0
    freed: int = 0


async def sweep(db: Database, now: dt.datetime | None = None) -> SweepResult:
    """One pass of the safety net (see the module): what it did."""
    now = now or utcnow()
    result = SweepResult()
    for call_id in await _long_connected_calls(db, now):
        async with db.unit_of_work() as uow:
            outcome = await _check_call(uow, call_id, now)
        if outcome == "alerted":
            result.alerted += 1
        elif outcome == "ended":
            result.ended += 1
    for agent_id, held_call_id in await _stranded_agents(db, now):
        async with db.unit_of_work() as uow:
            if await _free_if_stranded(uow, agent_id, held_call_id, now):
                result.freed += 1
    return result


# --- calls connected too long ----------------------------------------------------------


async def _long_connected_calls(db: Database, now: dt.datetime) -> list[int]:
    """Connected calls past their campaign's alert limit (not yet alerted) or end limit."""
    async with db.read() as session:
        config = await config_cache.cache_of(db).get(session)
        if not config.campaigns:
            return []
        shortest = min(c.stale_alert_seconds for c in config.campaigns.values())
        stmt = select(Call.id, Call.campaign_id, Call.answered_at, Call.stale_alerted_at).where(
            Call.state == CallState.CONNECTED,
            Call.answered_at <= now - dt.timedelta(seconds=shortest),
        )
        rows = (await session.execute(stmt)).all()
    due: list[int] = []
    for call_id, campaign_id, answered_at, alerted_at in rows:
        campaign = config.campaigns.get(campaign_id)
        if campaign is None or answered_at is None:
            continue
        connected = (now - answered_at).total_seconds()
        if connected >= campaign.stale_end_seconds or (
            alerted_at is None and connected >= campaign.stale_alert_seconds
        ):
            due.append(call_id)
    return due


def _alert(uow: UnitOfWork, call: Call, reason: str, text: str, connected: float) -> None:
    emit(
        uow,
        "supervisor.alert",
        campaign_id=call.campaign_id,
        call_id=call.id,
        # No agent_id on the event: it goes to the supervisors, not the volunteer.
        data={
            "text": text,
            "reason": reason,
            "about_agent_id": call.agent_id,
            "connected_seconds": round(connected),
        },
    )


async def _check_call(uow: UnitOfWork, call_id: int, now: dt.datetime) -> str | None:
    """Alert about or end one long-connected call, checked again under its lock."""
    call = await repository.lock_call(uow.session, call_id)
    if call.state != CallState.CONNECTED or call.answered_at is None:
        return None  # hung up meanwhile
    campaign = (await config_cache.snapshot(uow)).campaign(call.campaign_id)
    connected = (now - call.answered_at).total_seconds()
    minutes = round(connected / 60)
    if connected >= campaign.stale_end_seconds:
        await _end_stale(uow, call, now)
        _alert(
            uow,
            call,
            "stale_call_ended",
            f"Call {call.id} was ended after {minutes} min connected: its hang-up never came.",
            connected,
        )
        return "ended"
    if call.stale_alerted_at is None and connected >= campaign.stale_alert_seconds:
        call.stale_alerted_at = now
        _alert(
            uow,
            call,
            "stale_call",
            f"Call {call.id} has been connected for {minutes} min: is the line still up?",
            connected,
        )
        return "alerted"
    return None


async def _end_stale(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """End a connected call whose hang-up never came; its volunteer goes to wrap-up."""
    agent = None
    if call.agent_id is not None:
        agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    if agent is not None and agent.state == AgentState.CONSULTING:
        return  # the caller is on hold for a specialist: the consult's fallback ends it
    if agent is not None and agent.state == AgentState.ON_CALL and agent.current_call_id == call.id:
        await lifecycle.start_wrap_up(uow, call, agent, now, by="stale")
        call.end_reason = "stale"
    else:
        # Nobody holds it (it cannot happen through the steps; kept for safety): it ends.
        call.state = next_call_state(call.state, "fail")
        call.hangup_at = call.ended_at = now
        call.end_reason = "stale"
        await timers.cancel_all_for_call(uow, call.id)
        emit(
            uow,
            "call.failed",
            campaign_id=call.campaign_id,
            call_id=call.id,
            agent_id=call.agent_id,
            data={"reason": "stale"},
        )
    # The platform may still carry the line: tell it to drop it (a no-op if it is gone).
    issue_command(uow, CommandName.HANGUP, call.provider_call_id)


# --- volunteers held by no live call -------------------------------------------------------


async def _stranded_agents(db: Database, now: dt.datetime) -> list[tuple[int, int | None]]:
    """(agent id, current call id) of the volunteers that look stranded."""
    holds_live = and_(
        Call.agent_id == Agent.id,
        or_(
            # A callback being dialled holds its volunteer reserved too.
            and_(
                Agent.state == AgentState.RESERVED,
                Call.state.in_([CallState.OFFERED, CallState.DIALING]),
            ),
            and_(Agent.state == AgentState.ON_CALL, Call.state == CallState.CONNECTED),
        ),
    )
    stmt = (
        select(Agent.id, Agent.current_call_id)
        .outerjoin(Call, and_(Call.id == Agent.current_call_id, holds_live))
        .where(
            Agent.state.in_([AgentState.RESERVED, AgentState.ON_CALL]),
            Agent.state_since <= now - STRANDED_AFTER,
            Call.id.is_(None),
        )
    )
    async with db.read() as session:
        return [(agent_id, call_id) for agent_id, call_id in (await session.execute(stmt)).all()]


async def _free_if_stranded(
    uow: UnitOfWork, agent_id: int, call_id: int | None, now: dt.datetime
) -> bool:
    call = None
    if call_id is not None:
        stmt = select(Call).where(Call.id == call_id).with_for_update()
        call = (
            await uow.session.execute(stmt, execution_options={"populate_existing": True})
        ).scalar_one_or_none()
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    if agent.current_call_id != call_id or agent.state_since > now - STRANDED_AFTER:
        return False  # moved on meanwhile
    needs = {
        AgentState.RESERVED: (CallState.OFFERED, CallState.DIALING),
        AgentState.ON_CALL: (CallState.CONNECTED,),
    }
    needed = needs.get(AgentState(agent.state))
    if needed is None:
        return False
    if call is not None and call.agent_id == agent.id and call.state in needed:
        return False  # holds its live call after all
    was = agent.state
    await lifecycle.free_stranded(uow, agent, now)
    emit(
        uow,
        "supervisor.alert",
        campaign_id=agent.campaign_id,
        call_id=call_id,
        data={
            "text": f"Volunteer {agent.display_name} was {was} with no live call: freed.",
            "reason": "stranded_agent",
            "about_agent_id": agent.id,
        },
    )
    return True


class StaleSweeper(BackgroundTask):
    """Runs ``sweep`` every ``sweep_seconds`` in this process (supervised)."""

    def start(self, db: Database, sweep_seconds: float) -> None:
        self._launch(lambda: self._run(db, sweep_seconds), name="stale-sweeper")

    async def _run(self, db: Database, sweep_seconds: float) -> None:
        while True:
            # The first sweep waits one period: nothing is stale within seconds of a
            # start, and a write at start-up competes with the start-up's own work.
            await asyncio.sleep(sweep_seconds)
            done = await sweep(db)
            if done.alerted or done.ended or done.freed:
                log.warning(
                    "safety net: %s stale call alert(s), %s stale call(s) ended, "
                    "%s stranded volunteer(s) freed",
                    done.alerted,
                    done.ended,
                    done.freed,
                )
